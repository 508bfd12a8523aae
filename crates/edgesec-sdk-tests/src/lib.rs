//! Real-client tests: the Python and Node `azure-iot-device` SDKs, unmodified, run as modules
//! of the real `edgesecd` and use its workload API. Everything is under `tests/`; the module
//! scripts the SDKs run are in `fixtures/`. See the README's "Real SDK tests" for the setup.
