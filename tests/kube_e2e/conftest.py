from tests.kube.conftest import kube_emulator  # noqa: F401  (module-scoped API emulator)
