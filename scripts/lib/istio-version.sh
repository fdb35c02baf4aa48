# The one place the tested Istio version is named (scripts and lab/istio read it).
ISTIO_MODULE_VERSION=v0.0.0-20260826214018-9739e10eb9d7
ISTIO_PIN_NAME=1.30-9739e10eb9d7
