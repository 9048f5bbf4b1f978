"""The ``cdc`` commands, a module per family; `cdc.cli` registers them on its root group.

Each command parses its options, calls the library and picks the exit code; what it does lives below it
(`cdc.roles`, `cdc.ops`, `cdc.provisioning`, ...). The tools (`cdc.tools`, `cdc.sandbox`) are imported
inside the commands that run them, so the product path never loads them and `cdc --help` stays fast.

- `roles`: ingest, poll, sync, admin (and admin hash-password), demo
- `topics`, `config`, `provision`: the catalog, the sync configuration, the CRMs' set-up
- `ops`, `pauses`, `deadletters`, `excluded`, `push`: status, replay, explain, resync; pause, resume,
  paused; dead letters; excluded records; push and pull
- `sandbox`, `dev`, `bench`: the emulators, the local broker, the benchmarks
"""
