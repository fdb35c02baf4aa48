// Names shared by every component and by the manifests. Change them here only:
// the webhook, the registrar, the loader and the manifest tests all import them.

export const SYSTEM_NAMESPACE = "meshlane-system";
export const PART_OF_LABEL = "app.kubernetes.io/part-of";
export const PART_OF_VALUE = "meshlane";

/** Namespace label that opts a namespace in. */
export const NAMESPACE_LABEL = "meshlane.io/accelerate";
export const NAMESPACE_LABEL_VALUE = "enabled";
/** Pod label or annotation with value "false" opts a single pod out. */
export const POD_OPT_OUT_KEY = "meshlane.io/accelerate";

export const ANNOTATION_STATUS = "meshlane.io/status";
export const ANNOTATION_REASON = "meshlane.io/reason";
export const ANNOTATION_INTERCEPTION = "meshlane.io/interception";
/** Pod annotation choosing what sk_msg may redirect into: proxy | all | none (registry/document.ts REDIRECT_MODES). */
export const ANNOTATION_REDIRECT = "meshlane.io/redirect";
export const STATUS_ACCELERATED = "accelerated";
export const STATUS_SKIPPED = "skipped";

/**
 * Label the webhook puts on the pods it accelerates (value STATUS_ACCELERATED), beside
 * the annotation of the same name: the registrar watches only pods that carry it, so
 * its cache holds meshlane's pods, not the cluster's.
 */
export const POD_MARK_LABEL = ANNOTATION_STATUS;
export const MARKED_POD_SELECTOR = `${POD_MARK_LABEL}=${STATUS_ACCELERATED}`;
