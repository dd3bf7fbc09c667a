complete -c backout-agent -l config -d 'The agent\'s configuration file' -r -F
complete -c backout-agent -l sessions-from -d 'Load testing only: run one session per `<id>.pem` + `<id>.key` pair in DIR (e.g. a PKI\'s `agents/` folder) in this one process, each under its own certificate, with its own nonces and ledger in `<state_dir>/<id>/`. The configuration\'s `[tls] cert` and `key` are then ignored (its `ca` is used); the compiled plugins are shared. Needs about 8 open files per session' -r -F
complete -c backout-agent -l log -d 'Log filter (e.g. info, debug); also RUST_LOG' -r
complete -c backout-agent -l log-format -d 'Log lines as text, or as one JSON object per line with the run, phase, step and host as fields' -r -f -a "text\t'One human-readable line per event (the default)'
json\t'One JSON object per line: the event\'s fields at the top level, and the fields of the spans it happened in (run, phase, step, host…) under `span` (the innermost) and `spans` (outermost first)'"
complete -c backout-agent -l generate-assets -d 'Packaging: write shell completions and man pages into DIR, and exit' -r -F
complete -c backout-agent -s h -l help -d 'Print help (see more with \'--help\')'
complete -c backout-agent -s V -l version -d 'Print version'
