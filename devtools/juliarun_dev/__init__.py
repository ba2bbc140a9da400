"""juliarun-operator's development tools, for a source checkout only (never in the wheel or
the image): devcluster/ the local control plane (`juliarun cluster`), devnode/ and
devnode_config.py its worker node, devpki.py their certificates, gen/ the CRD and docs from
the job-type table (`make generate`). `make setup` installs this package editable."""
