"""GitHub: the variables of the current job (``env``), a REST client for statuses, check runs,
run artifacts and workflow dispatch (``client``), its errors as types (``errors``), payload
models (``models``), size limits (``limits``), retry rules (``retry``) and safe archive
extraction (``archive``)."""
