// Label and field selectors with the real server's semantics: `!=` and `notin` match
// objects that lack the label; an empty selector matches everything; a field the type
// does not index is a 400, not a silent non-match.

import { badRequest } from "./errors.js";
import type { KubeObject, ResourceType } from "./resources.js";

export type Operator = "in" | "notin" | "exists" | "!exists";

export interface Requirement {
  key: string;
  operator: Operator;
  values: string[];
}

const NAME = "[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?";
const KEY = `(?:[a-z0-9](?:[-a-z0-9.]{0,251}[a-z0-9])?/)?${NAME}`;
const VALUE = `(?:${NAME})?`;
const EXISTS = new RegExp(`^(${KEY})$`);
const NOT_EXISTS = new RegExp(`^!\\s*(${KEY})$`);
const EQUALITY = new RegExp(`^(${KEY})\\s*(==|=|!=)\\s*(${VALUE})$`);
const SET = new RegExp(`^(${KEY})\\s+(in|notin)\\s*\\(([^()]*)\\)$`);
const VALUE_ONLY = new RegExp(`^${VALUE}$`);

/** Commas inside `in (a,b)` do not separate requirements. */
function splitTerms(selector: string): string[] {
  const terms: string[] = [];
  let depth = 0, start = 0;
  for (let i = 0; i < selector.length; i++) {
    const c = selector[i];
    if (c === "(") depth++;
    else if (c === ")") depth--;
    else if (c === "," && depth === 0) {
      terms.push(selector.slice(start, i));
      start = i + 1;
    }
  }
  terms.push(selector.slice(start));
  return terms.map((t) => t.trim());
}

export function parseLabelSelector(selector: string): Requirement[] {
  if (selector.trim() === "") return [];
  return splitTerms(selector).map((term) => {
    let m: RegExpExecArray | null;
    if ((m = NOT_EXISTS.exec(term))) return { key: m[1]!, operator: "!exists", values: [] };
    if ((m = EXISTS.exec(term))) return { key: m[1]!, operator: "exists", values: [] };
    if ((m = EQUALITY.exec(term))) return { key: m[1]!, operator: m[2] === "!=" ? "notin" : "in", values: [m[3]!] };
    if ((m = SET.exec(term))) {
      const values = m[3]!.split(",").map((v) => v.trim());
      const bad = values.find((v) => !VALUE_ONLY.test(v));
      if (bad !== undefined) throw badRequest(`unable to parse requirement: invalid label value "${bad}" in "${term}"`);
      return { key: m[1]!, operator: m[2] as Operator, values };
    }
    throw badRequest(`unable to parse requirement: "${term}" is not a label selector term (key, !key, key=v, key==v, key!=v, key in (v,...), key notin (v,...))`);
  });
}

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: Array<{ key: string; operator: string; values?: string[] }>;
}

const EXPRESSION_OPERATORS: Record<string, Operator> = { In: "in", NotIn: "notin", Exists: "exists", DoesNotExist: "!exists" };

/** A metav1.LabelSelector, as webhooks carry it; absent means "everything". */
export function labelSelectorRequirements(selector: LabelSelector | undefined): Requirement[] {
  if (!selector) return [];
  const fromLabels = Object.entries(selector.matchLabels ?? {}).map(([key, value]): Requirement =>
    ({ key, operator: "in", values: [value] }));
  const fromExpressions = (selector.matchExpressions ?? []).map((e): Requirement => {
    const operator = EXPRESSION_OPERATORS[e.operator];
    if (!operator) throw new Error(`label selector operator "${e.operator}" is not one of In, NotIn, Exists, DoesNotExist`);
    const values = e.values ?? [];
    const wantsValues = operator === "in" || operator === "notin";
    if (wantsValues !== values.length > 0) {
      throw new Error(`label selector ${e.key} ${e.operator}: values must be ${wantsValues ? "non-empty" : "empty"}`);
    }
    return { key: e.key, operator, values };
  });
  return [...fromLabels, ...fromExpressions];
}

export function matchesLabels(requirements: Requirement[], labels: Record<string, string> | undefined): boolean {
  return requirements.every(({ key, operator, values }) => {
    const value = labels?.[key];
    switch (operator) {
      case "exists": return value !== undefined;
      case "!exists": return value === undefined;
      case "in": return value !== undefined && values.includes(value);
      case "notin": return value === undefined || !values.includes(value);
    }
  });
}

export interface FieldRequirement {
  field: string;
  equals: boolean;
  value: string;
  read: (obj: KubeObject) => string;
}

export function parseFieldSelector(selector: string, type: ResourceType): FieldRequirement[] {
  if (selector.trim() === "") return [];
  return selector.split(",").map((raw) => {
    const term = raw.trim();
    const m = /^([A-Za-z.]+)\s*(==|=|!=)\s*(.*)$/.exec(term);
    if (!m) throw badRequest(`invalid field selector term "${term}": expected field=value, field==value or field!=value`);
    const field = m[1]!;
    const read = readField(field, type);
    if (!read) throw badRequest(`field label not supported: ${field}`);
    return { field, equals: m[2] !== "!=", value: m[3]!, read };
  });
}

function readField(field: string, type: ResourceType): ((obj: KubeObject) => string) | undefined {
  if (field === "metadata.name") return (o) => o.metadata.name ?? "";
  if (field === "metadata.namespace" && type.namespaced) return (o) => o.metadata.namespace ?? "";
  return type.fieldLabels[field];
}

export function matchesFields(requirements: FieldRequirement[], obj: KubeObject): boolean {
  return requirements.every((r) => (r.read(obj) === r.value) === r.equals);
}
