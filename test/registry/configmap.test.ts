// registry/configmap.ts: the registry object's name, labels, selectors, encoding and
// decoding, as the registrar writes it and the loader reads it.

import { test } from "node:test";
import assert from "node:assert/strict";
import type { V1ConfigMap } from "@kubernetes/client-node";
import {
  ALL_REGISTRATIONS_SELECTOR,
  nodeLabelValue,
  nodeRegistrationsSelector,
  readRegistrationObject,
  registrationObject,
  registrationObjectName,
  registrationPatch,
  registryOfObjects,
} from "../../registry/configmap.js";

const LONG_NODE = `${"a".repeat(60)}.compute.internal`;

test("an object per pod: named after the UID, in meshlane-system, labelled with meshlane and its node", () => {
  const cm = registrationObject("node-a", "0f6c-uid", '{"version":2}');
  assert.deepEqual(cm, {
    metadata: {
      name: "meshlane-pod-0f6c-uid",
      namespace: "meshlane-system",
      labels: { "app.kubernetes.io/part-of": "meshlane", "meshlane.io/node": "node-a" },
      annotations: { "meshlane.io/node": "node-a" },
    },
    data: { registration: '{"version":2}' },
  });
  assert.equal(registrationObjectName("0f6c-uid"), cm.metadata!.name);
  assert.deepEqual(readRegistrationObject(cm), { uid: "0f6c-uid", node: "node-a", document: '{"version":2}' });
  assert.deepEqual(registrationPatch("node-a", "0f6c-uid", "d"), { metadata: { labels: cm.metadata!.labels, annotations: cm.metadata!.annotations }, data: { registration: "d" } });
});

test("selectors: every node's objects, or one node's", () => {
  assert.equal(ALL_REGISTRATIONS_SELECTOR, "app.kubernetes.io/part-of=meshlane,meshlane.io/node");
  assert.equal(nodeRegistrationsSelector("node-a"), "app.kubernetes.io/part-of=meshlane,meshlane.io/node=node-a");
});

test("a node name too long for a label value is labelled by its hash, and read back whole", () => {
  const value = nodeLabelValue(LONG_NODE);
  assert.match(value, /^h-[0-9a-f]{60}$/);
  assert.equal(nodeLabelValue(LONG_NODE), value, "stable");
  assert.notEqual(nodeLabelValue(`${LONG_NODE}x`), value);
  assert.equal(nodeLabelValue("ip-10-0-0-1.ec2.internal"), "ip-10-0-0-1.ec2.internal");
  const cm = registrationObject(LONG_NODE, "u", "d");
  assert.equal(cm.metadata!.labels!["meshlane.io/node"], value);
  assert.equal(readRegistrationObject(cm)!.node, LONG_NODE);
});

test("other ConfigMaps are not registry objects", () => {
  const others: V1ConfigMap[] = [
    { metadata: { name: "meshlane-pod-u", labels: { "app.kubernetes.io/part-of": "meshlane" } }, data: { registration: "{}" } },
    { metadata: { name: "kube-root-ca.crt", labels: { "app.kubernetes.io/part-of": "meshlane", "meshlane.io/node": "node-a" } } },
    { metadata: { name: "meshlane-pod-u", labels: { "meshlane.io/node": "node-a" } } },
  ];
  for (const cm of others) assert.equal(readRegistrationObject(cm), undefined, JSON.stringify(cm.metadata));
});

test("registryOfObjects: a node's objects as UID → parsed JSON; text that is not JSON and missing documents are handed on for the agent to report", () => {
  const garbled = registrationObject("node-a", "u2", "{not json");
  const empty = registrationObject("node-a", "u3", "x");
  delete empty.data;
  const registry = registryOfObjects(
    [registrationObject("node-a", "u1", '{"version":2}'), garbled, empty, registrationObject("node-b", "u4", "{}"), { metadata: { name: "unrelated" } }],
    "node-a",
  );
  assert.deepEqual(registry, { u1: { version: 2 }, u2: "{not json", u3: undefined });
});

test("registryOfObjects: an object whose label matches but whose node is another one's is left out", () => {
  const other = registrationObject("node-b", "u1", "{}");
  other.metadata!.labels!["meshlane.io/node"] = nodeLabelValue("node-a");
  assert.deepEqual(registryOfObjects([other], "node-a"), {});
});
