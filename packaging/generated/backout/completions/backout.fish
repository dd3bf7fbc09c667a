# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_backout_global_optspecs
    string join \n log= log-format= h/help V/version
end

function __fish_backout_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_backout_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_backout_using_subcommand
    set -l cmd (__fish_backout_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c backout -n "__fish_backout_needs_command" -l log -d 'Log filter (e.g. info, debug, backout=debug); also RUST_LOG' -r
complete -c backout -n "__fish_backout_needs_command" -l log-format -d 'Log lines as text, or as one JSON object per line with the run, phase, step and host as fields' -r -f -a "text\t'One human-readable line per event (the default)'
json\t'One JSON object per line: the event\'s fields at the top level, and the fields of the spans it happened in (run, phase, step, host…) under `span` (the innermost) and `spans` (outermost first)'"
complete -c backout -n "__fish_backout_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c backout -n "__fish_backout_needs_command" -s V -l version -d 'Print version'
complete -c backout -n "__fish_backout_needs_command" -f -a "init" -d 'Write a starter set that starts as written: PKI, coordinator.toml, an agent configuration per host, and a plan with one trigger, one phase and one approval. Refuses a directory that is not empty'
complete -c backout -n "__fish_backout_needs_command" -f -a "pki" -d 'Create the fleet PKI and issue certificates'
complete -c backout -n "__fish_backout_needs_command" -f -a "serve" -d 'Run the coordinator'
complete -c backout -n "__fish_backout_needs_command" -f -a "agents" -d 'List agents: connected or gone, version, last seen, plugins'
complete -c backout -n "__fish_backout_needs_command" -f -a "assess" -d 'Phase 1.1: run the health checks on every agent now and print one table'
complete -c backout -n "__fish_backout_needs_command" -f -a "guard" -d 'Watch the decision matrix after a deploy; act when a trigger fires'
complete -c backout -n "__fish_backout_needs_command" -f -a "signal" -d 'Set manual signals and record counted events'
complete -c backout -n "__fish_backout_needs_command" -f -a "whoami" -d 'Show who the coordinator thinks you are, and your roles'
complete -c backout -n "__fish_backout_needs_command" -f -a "status" -d 'Show which coordinator leads: its lease epoch and age, the standbys'
complete -c backout -n "__fish_backout_needs_command" -f -a "rollback" -d 'Start a rollback run'
complete -c backout -n "__fish_backout_needs_command" -f -a "remedy" -d 'Apply a trigger\'s lighter remedy, or undo it (each a run of its own)'
complete -c backout -n "__fish_backout_needs_command" -f -a "approve" -d 'Approve (or refuse) a run or one of its gated phases, under your own certificate'
complete -c backout -n "__fish_backout_needs_command" -f -a "runs" -d 'List runs with their status and the approvals they wait for'
complete -c backout -n "__fish_backout_needs_command" -f -a "watch" -d 'Follow a run live: a progress bar per phase and host, plugins\' log lines, approvals waited on, the final result. Any number of people can watch the same run. Exit 0 when the run succeeds, 1 otherwise'
complete -c backout -n "__fish_backout_needs_command" -f -a "report" -d 'The post-rollback report of a run: summary, timeline, approvals, versions, impact, escalation, success criteria, follow-ups'
complete -c backout -n "__fish_backout_needs_command" -f -a "drill" -d 'Rehearse the plan against its staging fleet: a real run with its approvals, followed live; then a drill report with each phase\'s time against the last drill\'s, and the plan file stamped with the date and the figures. Refuses a coordinator that serves another plan'
complete -c backout -n "__fish_backout_needs_command" -f -a "abort" -d 'Abort a run: nothing more is dispatched'
complete -c backout -n "__fish_backout_needs_command" -f -a "audit" -d 'Check the journal\'s hash chain'
complete -c backout -n "__fish_backout_needs_command" -f -a "plan" -d 'Work with plan files'
complete -c backout -n "__fish_backout_needs_command" -f -a "dashboard" -d 'Serve the incident on a local web page: matrix, fleet, runs live, approvals and reports, acting under your own certificate'
complete -c backout -n "__fish_backout_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c backout -n "__fish_backout_using_subcommand init" -l host -d 'A host of the fleet (repeat the flag): each gets an agent certificate and its agent configuration, agents/HOST.toml' -r
complete -c backout -n "__fish_backout_using_subcommand init" -l trust-domain -d 'The fleet\'s trust domain, in every identity (spiffe://DOMAIN/...)' -r
complete -c backout -n "__fish_backout_using_subcommand init" -l listen -d 'Where the coordinator listens, host:port; the agents dial it there (127.0.0.1 when it listens on every address)' -r
complete -c backout -n "__fish_backout_using_subcommand init" -l plugins -d 'The directory of the plugin components the agents load (health.wasm); default: DIR/plugins' -r -F
complete -c backout -n "__fish_backout_using_subcommand init" -l health-url -d 'The health URL the plan\'s check calls on every host' -r
complete -c backout -n "__fish_backout_using_subcommand init" -l log -d 'Log filter (e.g. info, debug, backout=debug); also RUST_LOG' -r
complete -c backout -n "__fish_backout_using_subcommand init" -l log-format -d 'Log lines as text, or as one JSON object per line with the run, phase, step and host as fields' -r -f -a "text\t'One human-readable line per event (the default)'
json\t'One JSON object per line: the event\'s fields at the top level, and the fields of the spans it happened in (run, phase, step, host…) under `span` (the innermost) and `spans` (outermost first)'"
complete -c backout -n "__fish_backout_using_subcommand init" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c backout -n "__fish_backout_using_subcommand pki; and not __fish_seen_subcommand_from init issue renew revoke help" -l log -d 'Log filter (e.g. info, debug, backout=debug); also RUST_LOG' -r
complete -c backout -n "__fish_backout_using_subcommand pki; and not __fish_seen_subcommand_from init issue renew revoke help" -l log-format -d 'Log lines as text, or as one JSON object per line with the run, phase, step and host as fields' -r -f -a "text\t'One human-readable line per event (the default)'
json\t'One JSON object per line: the event\'s fields at the top level, and the fields of the spans it happened in (run, phase, step, host…) under `span` (the innermost) and `spans` (outermost first)'"
complete -c backout -n "__fish_backout_using_subcommand pki; and not __fish_seen_subcommand_from init issue renew revoke help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c backout -n "__fish_backout_using_subcommand pki; and not __fish_seen_subcommand_from init issue renew revoke help" -f -a "init" -d 'Create the fleet CA, the coordinator\'s TLS certificate, its separate ed25519 command-signing key pair, and the ed25519 key pair that signs the journal\'s checkpoints (operators keep checkpoint-signing.pub)'
complete -c backout -n "__fish_backout_using_subcommand pki; and not __fish_seen_subcommand_from init issue renew revoke help" -f -a "issue" -d 'Issue a certificate for an agent or an operator'
complete -c backout -n "__fish_backout_using_subcommand pki; and not __fish_seen_subcommand_from init issue renew revoke help" -f -a "renew" -d 'Renew a certificate in place: a new key and certificate replace the old ones. A running coordinator picks up its renewed certificate at the next handshake; an agent at its next (re)connection. The old certificate stays valid until it expires: revoke it if it must stop'
complete -c backout -n "__fish_backout_using_subcommand pki; and not __fish_seen_subcommand_from init issue renew revoke help" -f -a "revoke" -d 'Revoke an agent\'s or operator\'s certificate: add it to the CA-signed revocation list DIR/crl.pem and sign the list again with a new next-update time. Without KIND and NAME, only re-signs the list (run it before the next update passes: a coordinator refuses every client certificate while its list is out of date). The coordinator reads the list named by `crl = ...` in its configuration, again whenever it changes'
complete -c backout -n "__fish_backout_using_subcommand pki; and not __fish_seen_subcommand_from init issue renew revoke help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c backout -n "__fish_backout_using_subcommand pki; and __fish_seen_subcommand_from init" -l dir -d 'Directory to write into (created if missing); existing files are never overwritten' -r -F
complete -c backout -n "__fish_backout_using_subcommand pki; and __fish_seen_subcommand_from init" -l trust-domain -d 'The fleet\'s trust domain, used in every identity (spiffe://DOMAIN/...)' -r
complete -c backout -n "__fish_backout_using_subcommand pki; and __fish_seen_subcommand_from init" -l san -d 'Extra DNS names or IP addresses for the coordinator certificate (localhost and 127.0.0.1 are always included)' -r
complete -c backout -n "__fish_backout_using_subcommand pki; and __fish_seen_subcommand_from init" -l days -d 'Validity of the coordinator certificate in days' -r
complete -c backout -n "__fish_backout_using_subcommand pki; and __fish_seen_subcommand_from init" -l log -d 'Log filter (e.g. info, debug, backout=debug); also RUST_LOG' -r
complete -c backout -n "__fish_backout_using_subcommand pki; and __fish_seen_subcommand_from init" -l log-format -d 'Log lines as text, or as one JSON object per line with the run, phase, step and host as fields' -r -f -a "text\t'One human-readable line per event (the default)'
json\t'One JSON object per line: the event\'s fields at the top level, and the fields of the spans it happened in (run, phase, step, host…) under `span` (the innermost) and `spans` (outermost first)'"
complete -c backout -n "__fish_backout_using_subcommand pki; and __fish_seen_subcommand_from init" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c backout -n "__fish_backout_using_subcommand pki; and __fish_seen_subcommand_from issue" -l dir -d 'The PKI directory (made by `pki init`): its CA signs the certificate, written under agents/ or operators/' -r -F
complete -c backout -n "__fish_backout_using_subcommand pki; and __fish_seen_subcommand_from issue" -l san -d 'Extra DNS names or IP addresses' -r
complete -c backout -n "__fish_backout_using_subcommand pki; and __fish_seen_subcommand_from issue" -l days -d 'Validity of the certificate in days' -r
complete -c backout -n "__fish_backout_using_subcommand pki; and __fish_seen_subcommand_from issue" -l role -d 'A role the CA attests in an operator\'s certificate (repeat for several): a URI SAN spiffe://DOMAIN/operator/NAME/role/ROLE. With `operator_certs` in its configuration, the coordinator refuses to start when its [operators] roles differ' -r
complete -c backout -n "__fish_backout_using_subcommand pki; and __fish_seen_subcommand_from issue" -l log -d 'Log filter (e.g. info, debug, backout=debug); also RUST_LOG' -r
complete -c backout -n "__fish_backout_using_subcommand pki; and __fish_seen_subcommand_from issue" -l log-format -d 'Log lines as text, or as one JSON object per line with the run, phase, step and host as fields' -r -f -a "text\t'One human-readable line per event (the default)'
json\t'One JSON object per line: the event\'s fields at the top level, and the fields of the spans it happened in (run, phase, step, host…) under `span` (the innermost) and `spans` (outermost first)'"
complete -c backout -n "__fish_backout_using_subcommand pki; and __fish_seen_subcommand_from issue" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c backout -n "__fish_backout_using_subcommand pki; and __fish_seen_subcommand_from renew" -l dir -d 'The PKI directory (made by `pki init`)' -r -F
complete -c backout -n "__fish_backout_using_subcommand pki; and __fish_seen_subcommand_from renew" -l san -d 'Extra DNS names or IP addresses (the coordinator always gets localhost and 127.0.0.1)' -r
complete -c backout -n "__fish_backout_using_subcommand pki; and __fish_seen_subcommand_from renew" -l days -d 'Validity of the new certificate in days' -r
complete -c backout -n "__fish_backout_using_subcommand pki; and __fish_seen_subcommand_from renew" -l role -d 'The roles of a renewed operator certificate (repeat for several); without --role, the current certificate\'s roles are kept. A role change is a renewal with the new roles' -r
complete -c backout -n "__fish_backout_using_subcommand pki; and __fish_seen_subcommand_from renew" -l log -d 'Log filter (e.g. info, debug, backout=debug); also RUST_LOG' -r
complete -c backout -n "__fish_backout_using_subcommand pki; and __fish_seen_subcommand_from renew" -l log-format -d 'Log lines as text, or as one JSON object per line with the run, phase, step and host as fields' -r -f -a "text\t'One human-readable line per event (the default)'
json\t'One JSON object per line: the event\'s fields at the top level, and the fields of the spans it happened in (run, phase, step, host…) under `span` (the innermost) and `spans` (outermost first)'"
complete -c backout -n "__fish_backout_using_subcommand pki; and __fish_seen_subcommand_from renew" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c backout -n "__fish_backout_using_subcommand pki; and __fish_seen_subcommand_from revoke" -l cert -d 'Revoke this certificate file instead (e.g. the `.pem.old` a renewal kept)' -r -F
complete -c backout -n "__fish_backout_using_subcommand pki; and __fish_seen_subcommand_from revoke" -l dir -d 'The PKI directory (made by `pki init`): its CA signs the list' -r -F
complete -c backout -n "__fish_backout_using_subcommand pki; and __fish_seen_subcommand_from revoke" -l days -d 'Days until the list\'s next update' -r
complete -c backout -n "__fish_backout_using_subcommand pki; and __fish_seen_subcommand_from revoke" -l log -d 'Log filter (e.g. info, debug, backout=debug); also RUST_LOG' -r
complete -c backout -n "__fish_backout_using_subcommand pki; and __fish_seen_subcommand_from revoke" -l log-format -d 'Log lines as text, or as one JSON object per line with the run, phase, step and host as fields' -r -f -a "text\t'One human-readable line per event (the default)'
json\t'One JSON object per line: the event\'s fields at the top level, and the fields of the spans it happened in (run, phase, step, host…) under `span` (the innermost) and `spans` (outermost first)'"
complete -c backout -n "__fish_backout_using_subcommand pki; and __fish_seen_subcommand_from revoke" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c backout -n "__fish_backout_using_subcommand pki; and __fish_seen_subcommand_from help" -f -a "init" -d 'Create the fleet CA, the coordinator\'s TLS certificate, its separate ed25519 command-signing key pair, and the ed25519 key pair that signs the journal\'s checkpoints (operators keep checkpoint-signing.pub)'
complete -c backout -n "__fish_backout_using_subcommand pki; and __fish_seen_subcommand_from help" -f -a "issue" -d 'Issue a certificate for an agent or an operator'
complete -c backout -n "__fish_backout_using_subcommand pki; and __fish_seen_subcommand_from help" -f -a "renew" -d 'Renew a certificate in place: a new key and certificate replace the old ones. A running coordinator picks up its renewed certificate at the next handshake; an agent at its next (re)connection. The old certificate stays valid until it expires: revoke it if it must stop'
complete -c backout -n "__fish_backout_using_subcommand pki; and __fish_seen_subcommand_from help" -f -a "revoke" -d 'Revoke an agent\'s or operator\'s certificate: add it to the CA-signed revocation list DIR/crl.pem and sign the list again with a new next-update time. Without KIND and NAME, only re-signs the list (run it before the next update passes: a coordinator refuses every client certificate while its list is out of date). The coordinator reads the list named by `crl = ...` in its configuration, again whenever it changes'
complete -c backout -n "__fish_backout_using_subcommand pki; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c backout -n "__fish_backout_using_subcommand serve" -l config -d 'The coordinator\'s configuration file (TOML)' -r -F
complete -c backout -n "__fish_backout_using_subcommand serve" -l listen -d 'Override `listen` from the configuration (host:port; port 0 picks one)' -r
complete -c backout -n "__fish_backout_using_subcommand serve" -l log -d 'Log filter (e.g. info, debug, backout=debug); also RUST_LOG' -r
complete -c backout -n "__fish_backout_using_subcommand serve" -l log-format -d 'Log lines as text, or as one JSON object per line with the run, phase, step and host as fields' -r -f -a "text\t'One human-readable line per event (the default)'
json\t'One JSON object per line: the event\'s fields at the top level, and the fields of the spans it happened in (run, phase, step, host…) under `span` (the innermost) and `spans` (outermost first)'"
complete -c backout -n "__fish_backout_using_subcommand serve" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c backout -n "__fish_backout_using_subcommand agents" -l output -d 'text: for people; json: for programs' -r -f -a "text\t'Tables for people'
json\t'JSON for programs'"
complete -c backout -n "__fish_backout_using_subcommand agents" -l coordinator -d 'The coordinator\'s address, host:port; with several coordinators, all of them, comma-separated (the one that leads answers)' -r
complete -c backout -n "__fish_backout_using_subcommand agents" -l pki -d 'A PKI directory (from `backout pki`): the CA and operators/<OPERATOR>.pem/.key are taken from it' -r -F
complete -c backout -n "__fish_backout_using_subcommand agents" -l operator -d 'Your operator name (with --pki)' -r
complete -c backout -n "__fish_backout_using_subcommand agents" -l ca -d 'The fleet CA certificate (instead of --pki)' -r -F
complete -c backout -n "__fish_backout_using_subcommand agents" -l cert -d 'Your certificate (instead of --pki/--operator)' -r -F
complete -c backout -n "__fish_backout_using_subcommand agents" -l key -d 'Your private key (instead of --pki/--operator)' -r -F
complete -c backout -n "__fish_backout_using_subcommand agents" -l server-name -d 'The name the coordinator\'s certificate carries (default: the host part of --coordinator)' -r
complete -c backout -n "__fish_backout_using_subcommand agents" -l log -d 'Log filter (e.g. info, debug, backout=debug); also RUST_LOG' -r
complete -c backout -n "__fish_backout_using_subcommand agents" -l log-format -d 'Log lines as text, or as one JSON object per line with the run, phase, step and host as fields' -r -f -a "text\t'One human-readable line per event (the default)'
json\t'One JSON object per line: the event\'s fields at the top level, and the fields of the spans it happened in (run, phase, step, host…) under `span` (the innermost) and `spans` (outermost first)'"
complete -c backout -n "__fish_backout_using_subcommand agents" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c backout -n "__fish_backout_using_subcommand assess" -l output -d 'text: for people; json: for programs' -r -f -a "text\t'Tables for people'
json\t'JSON for programs'"
complete -c backout -n "__fish_backout_using_subcommand assess" -l timeout -d 'How long to wait for the slowest host (e.g. 15s)' -r
complete -c backout -n "__fish_backout_using_subcommand assess" -l deploy-time -d 'When the deploy happened (RFC 3339, e.g. 2026-01-15T02:00:00Z, or how long ago, e.g. 45m), to answer "did it start after the deploy?"' -r
complete -c backout -n "__fish_backout_using_subcommand assess" -l coordinator -d 'The coordinator\'s address, host:port; with several coordinators, all of them, comma-separated (the one that leads answers)' -r
complete -c backout -n "__fish_backout_using_subcommand assess" -l pki -d 'A PKI directory (from `backout pki`): the CA and operators/<OPERATOR>.pem/.key are taken from it' -r -F
complete -c backout -n "__fish_backout_using_subcommand assess" -l operator -d 'Your operator name (with --pki)' -r
complete -c backout -n "__fish_backout_using_subcommand assess" -l ca -d 'The fleet CA certificate (instead of --pki)' -r -F
complete -c backout -n "__fish_backout_using_subcommand assess" -l cert -d 'Your certificate (instead of --pki/--operator)' -r -F
complete -c backout -n "__fish_backout_using_subcommand assess" -l key -d 'Your private key (instead of --pki/--operator)' -r -F
complete -c backout -n "__fish_backout_using_subcommand assess" -l server-name -d 'The name the coordinator\'s certificate carries (default: the host part of --coordinator)' -r
complete -c backout -n "__fish_backout_using_subcommand assess" -l log -d 'Log filter (e.g. info, debug, backout=debug); also RUST_LOG' -r
complete -c backout -n "__fish_backout_using_subcommand assess" -l log-format -d 'Log lines as text, or as one JSON object per line with the run, phase, step and host as fields' -r -f -a "text\t'One human-readable line per event (the default)'
json\t'One JSON object per line: the event\'s fields at the top level, and the fields of the spans it happened in (run, phase, step, host…) under `span` (the innermost) and `spans` (outermost first)'"
complete -c backout -n "__fish_backout_using_subcommand assess" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c backout -n "__fish_backout_using_subcommand guard" -l interval -d 'How often to look' -r
complete -c backout -n "__fish_backout_using_subcommand guard" -l deploy-time -d 'When the deploy happened (RFC 3339, or how long ago, e.g. 5m)' -r
complete -c backout -n "__fish_backout_using_subcommand guard" -l coordinator -d 'The coordinator\'s address, host:port; with several coordinators, all of them, comma-separated (the one that leads answers)' -r
complete -c backout -n "__fish_backout_using_subcommand guard" -l pki -d 'A PKI directory (from `backout pki`): the CA and operators/<OPERATOR>.pem/.key are taken from it' -r -F
complete -c backout -n "__fish_backout_using_subcommand guard" -l operator -d 'Your operator name (with --pki)' -r
complete -c backout -n "__fish_backout_using_subcommand guard" -l ca -d 'The fleet CA certificate (instead of --pki)' -r -F
complete -c backout -n "__fish_backout_using_subcommand guard" -l cert -d 'Your certificate (instead of --pki/--operator)' -r -F
complete -c backout -n "__fish_backout_using_subcommand guard" -l key -d 'Your private key (instead of --pki/--operator)' -r -F
complete -c backout -n "__fish_backout_using_subcommand guard" -l server-name -d 'The name the coordinator\'s certificate carries (default: the host part of --coordinator)' -r
complete -c backout -n "__fish_backout_using_subcommand guard" -l log -d 'Log filter (e.g. info, debug, backout=debug); also RUST_LOG' -r
complete -c backout -n "__fish_backout_using_subcommand guard" -l log-format -d 'Log lines as text, or as one JSON object per line with the run, phase, step and host as fields' -r -f -a "text\t'One human-readable line per event (the default)'
json\t'One JSON object per line: the event\'s fields at the top level, and the fields of the spans it happened in (run, phase, step, host…) under `span` (the innermost) and `spans` (outermost first)'"
complete -c backout -n "__fish_backout_using_subcommand guard" -l exit-on-immediate -d 'Exit with code 1 when an immediate trigger fires (for scripts)'
complete -c backout -n "__fish_backout_using_subcommand guard" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c backout -n "__fish_backout_using_subcommand signal; and not __fish_seen_subcommand_from set event help" -l coordinator -d 'The coordinator\'s address, host:port; with several coordinators, all of them, comma-separated (the one that leads answers)' -r
complete -c backout -n "__fish_backout_using_subcommand signal; and not __fish_seen_subcommand_from set event help" -l pki -d 'A PKI directory (from `backout pki`): the CA and operators/<OPERATOR>.pem/.key are taken from it' -r -F
complete -c backout -n "__fish_backout_using_subcommand signal; and not __fish_seen_subcommand_from set event help" -l operator -d 'Your operator name (with --pki)' -r
complete -c backout -n "__fish_backout_using_subcommand signal; and not __fish_seen_subcommand_from set event help" -l ca -d 'The fleet CA certificate (instead of --pki)' -r -F
complete -c backout -n "__fish_backout_using_subcommand signal; and not __fish_seen_subcommand_from set event help" -l cert -d 'Your certificate (instead of --pki/--operator)' -r -F
complete -c backout -n "__fish_backout_using_subcommand signal; and not __fish_seen_subcommand_from set event help" -l key -d 'Your private key (instead of --pki/--operator)' -r -F
complete -c backout -n "__fish_backout_using_subcommand signal; and not __fish_seen_subcommand_from set event help" -l server-name -d 'The name the coordinator\'s certificate carries (default: the host part of --coordinator)' -r
complete -c backout -n "__fish_backout_using_subcommand signal; and not __fish_seen_subcommand_from set event help" -l log -d 'Log filter (e.g. info, debug, backout=debug); also RUST_LOG' -r
complete -c backout -n "__fish_backout_using_subcommand signal; and not __fish_seen_subcommand_from set event help" -l log-format -d 'Log lines as text, or as one JSON object per line with the run, phase, step and host as fields' -r -f -a "text\t'One human-readable line per event (the default)'
json\t'One JSON object per line: the event\'s fields at the top level, and the fields of the spans it happened in (run, phase, step, host…) under `span` (the innermost) and `spans` (outermost first)'"
complete -c backout -n "__fish_backout_using_subcommand signal; and not __fish_seen_subcommand_from set event help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c backout -n "__fish_backout_using_subcommand signal; and not __fish_seen_subcommand_from set event help" -f -a "set" -d 'Set a manual signal, recorded with your identity'
complete -c backout -n "__fish_backout_using_subcommand signal; and not __fish_seen_subcommand_from set event help" -f -a "event" -d 'Record counted events (e.g. one critical ticket)'
complete -c backout -n "__fish_backout_using_subcommand signal; and not __fish_seen_subcommand_from set event help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c backout -n "__fish_backout_using_subcommand signal; and __fish_seen_subcommand_from set" -l note -d 'Why (recorded in the journal with your name)' -r
complete -c backout -n "__fish_backout_using_subcommand signal; and __fish_seen_subcommand_from set" -l output -d 'text: for people; json: for programs' -r -f -a "text\t'Tables for people'
json\t'JSON for programs'"
complete -c backout -n "__fish_backout_using_subcommand signal; and __fish_seen_subcommand_from set" -l coordinator -d 'The coordinator\'s address, host:port; with several coordinators, all of them, comma-separated (the one that leads answers)' -r
complete -c backout -n "__fish_backout_using_subcommand signal; and __fish_seen_subcommand_from set" -l pki -d 'A PKI directory (from `backout pki`): the CA and operators/<OPERATOR>.pem/.key are taken from it' -r -F
complete -c backout -n "__fish_backout_using_subcommand signal; and __fish_seen_subcommand_from set" -l operator -d 'Your operator name (with --pki)' -r
complete -c backout -n "__fish_backout_using_subcommand signal; and __fish_seen_subcommand_from set" -l ca -d 'The fleet CA certificate (instead of --pki)' -r -F
complete -c backout -n "__fish_backout_using_subcommand signal; and __fish_seen_subcommand_from set" -l cert -d 'Your certificate (instead of --pki/--operator)' -r -F
complete -c backout -n "__fish_backout_using_subcommand signal; and __fish_seen_subcommand_from set" -l key -d 'Your private key (instead of --pki/--operator)' -r -F
complete -c backout -n "__fish_backout_using_subcommand signal; and __fish_seen_subcommand_from set" -l server-name -d 'The name the coordinator\'s certificate carries (default: the host part of --coordinator)' -r
complete -c backout -n "__fish_backout_using_subcommand signal; and __fish_seen_subcommand_from set" -l log -d 'Log filter (e.g. info, debug, backout=debug); also RUST_LOG' -r
complete -c backout -n "__fish_backout_using_subcommand signal; and __fish_seen_subcommand_from set" -l log-format -d 'Log lines as text, or as one JSON object per line with the run, phase, step and host as fields' -r -f -a "text\t'One human-readable line per event (the default)'
json\t'One JSON object per line: the event\'s fields at the top level, and the fields of the spans it happened in (run, phase, step, host…) under `span` (the innermost) and `spans` (outermost first)'"
complete -c backout -n "__fish_backout_using_subcommand signal; and __fish_seen_subcommand_from set" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c backout -n "__fish_backout_using_subcommand signal; and __fish_seen_subcommand_from event" -l count -d 'How many events' -r
complete -c backout -n "__fish_backout_using_subcommand signal; and __fish_seen_subcommand_from event" -l note -d 'What they are (recorded in the journal with your name)' -r
complete -c backout -n "__fish_backout_using_subcommand signal; and __fish_seen_subcommand_from event" -l output -d 'text: for people; json: for programs' -r -f -a "text\t'Tables for people'
json\t'JSON for programs'"
complete -c backout -n "__fish_backout_using_subcommand signal; and __fish_seen_subcommand_from event" -l coordinator -d 'The coordinator\'s address, host:port; with several coordinators, all of them, comma-separated (the one that leads answers)' -r
complete -c backout -n "__fish_backout_using_subcommand signal; and __fish_seen_subcommand_from event" -l pki -d 'A PKI directory (from `backout pki`): the CA and operators/<OPERATOR>.pem/.key are taken from it' -r -F
complete -c backout -n "__fish_backout_using_subcommand signal; and __fish_seen_subcommand_from event" -l operator -d 'Your operator name (with --pki)' -r
complete -c backout -n "__fish_backout_using_subcommand signal; and __fish_seen_subcommand_from event" -l ca -d 'The fleet CA certificate (instead of --pki)' -r -F
complete -c backout -n "__fish_backout_using_subcommand signal; and __fish_seen_subcommand_from event" -l cert -d 'Your certificate (instead of --pki/--operator)' -r -F
complete -c backout -n "__fish_backout_using_subcommand signal; and __fish_seen_subcommand_from event" -l key -d 'Your private key (instead of --pki/--operator)' -r -F
complete -c backout -n "__fish_backout_using_subcommand signal; and __fish_seen_subcommand_from event" -l server-name -d 'The name the coordinator\'s certificate carries (default: the host part of --coordinator)' -r
complete -c backout -n "__fish_backout_using_subcommand signal; and __fish_seen_subcommand_from event" -l log -d 'Log filter (e.g. info, debug, backout=debug); also RUST_LOG' -r
complete -c backout -n "__fish_backout_using_subcommand signal; and __fish_seen_subcommand_from event" -l log-format -d 'Log lines as text, or as one JSON object per line with the run, phase, step and host as fields' -r -f -a "text\t'One human-readable line per event (the default)'
json\t'One JSON object per line: the event\'s fields at the top level, and the fields of the spans it happened in (run, phase, step, host…) under `span` (the innermost) and `spans` (outermost first)'"
complete -c backout -n "__fish_backout_using_subcommand signal; and __fish_seen_subcommand_from event" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c backout -n "__fish_backout_using_subcommand signal; and __fish_seen_subcommand_from help" -f -a "set" -d 'Set a manual signal, recorded with your identity'
complete -c backout -n "__fish_backout_using_subcommand signal; and __fish_seen_subcommand_from help" -f -a "event" -d 'Record counted events (e.g. one critical ticket)'
complete -c backout -n "__fish_backout_using_subcommand signal; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c backout -n "__fish_backout_using_subcommand whoami" -l coordinator -d 'The coordinator\'s address, host:port; with several coordinators, all of them, comma-separated (the one that leads answers)' -r
complete -c backout -n "__fish_backout_using_subcommand whoami" -l pki -d 'A PKI directory (from `backout pki`): the CA and operators/<OPERATOR>.pem/.key are taken from it' -r -F
complete -c backout -n "__fish_backout_using_subcommand whoami" -l operator -d 'Your operator name (with --pki)' -r
complete -c backout -n "__fish_backout_using_subcommand whoami" -l ca -d 'The fleet CA certificate (instead of --pki)' -r -F
complete -c backout -n "__fish_backout_using_subcommand whoami" -l cert -d 'Your certificate (instead of --pki/--operator)' -r -F
complete -c backout -n "__fish_backout_using_subcommand whoami" -l key -d 'Your private key (instead of --pki/--operator)' -r -F
complete -c backout -n "__fish_backout_using_subcommand whoami" -l server-name -d 'The name the coordinator\'s certificate carries (default: the host part of --coordinator)' -r
complete -c backout -n "__fish_backout_using_subcommand whoami" -l log -d 'Log filter (e.g. info, debug, backout=debug); also RUST_LOG' -r
complete -c backout -n "__fish_backout_using_subcommand whoami" -l log-format -d 'Log lines as text, or as one JSON object per line with the run, phase, step and host as fields' -r -f -a "text\t'One human-readable line per event (the default)'
json\t'One JSON object per line: the event\'s fields at the top level, and the fields of the spans it happened in (run, phase, step, host…) under `span` (the innermost) and `spans` (outermost first)'"
complete -c backout -n "__fish_backout_using_subcommand whoami" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c backout -n "__fish_backout_using_subcommand status" -l output -d 'text: for people; json: for programs' -r -f -a "text\t'Tables for people'
json\t'JSON for programs'"
complete -c backout -n "__fish_backout_using_subcommand status" -l coordinator -d 'The coordinator\'s address, host:port; with several coordinators, all of them, comma-separated (the one that leads answers)' -r
complete -c backout -n "__fish_backout_using_subcommand status" -l pki -d 'A PKI directory (from `backout pki`): the CA and operators/<OPERATOR>.pem/.key are taken from it' -r -F
complete -c backout -n "__fish_backout_using_subcommand status" -l operator -d 'Your operator name (with --pki)' -r
complete -c backout -n "__fish_backout_using_subcommand status" -l ca -d 'The fleet CA certificate (instead of --pki)' -r -F
complete -c backout -n "__fish_backout_using_subcommand status" -l cert -d 'Your certificate (instead of --pki/--operator)' -r -F
complete -c backout -n "__fish_backout_using_subcommand status" -l key -d 'Your private key (instead of --pki/--operator)' -r -F
complete -c backout -n "__fish_backout_using_subcommand status" -l server-name -d 'The name the coordinator\'s certificate carries (default: the host part of --coordinator)' -r
complete -c backout -n "__fish_backout_using_subcommand status" -l log -d 'Log filter (e.g. info, debug, backout=debug); also RUST_LOG' -r
complete -c backout -n "__fish_backout_using_subcommand status" -l log-format -d 'Log lines as text, or as one JSON object per line with the run, phase, step and host as fields' -r -f -a "text\t'One human-readable line per event (the default)'
json\t'One JSON object per line: the event\'s fields at the top level, and the fields of the spans it happened in (run, phase, step, host…) under `span` (the innermost) and `spans` (outermost first)'"
complete -c backout -n "__fish_backout_using_subcommand status" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c backout -n "__fish_backout_using_subcommand rollback; and not __fish_seen_subcommand_from start help" -l coordinator -d 'The coordinator\'s address, host:port; with several coordinators, all of them, comma-separated (the one that leads answers)' -r
complete -c backout -n "__fish_backout_using_subcommand rollback; and not __fish_seen_subcommand_from start help" -l pki -d 'A PKI directory (from `backout pki`): the CA and operators/<OPERATOR>.pem/.key are taken from it' -r -F
complete -c backout -n "__fish_backout_using_subcommand rollback; and not __fish_seen_subcommand_from start help" -l operator -d 'Your operator name (with --pki)' -r
complete -c backout -n "__fish_backout_using_subcommand rollback; and not __fish_seen_subcommand_from start help" -l ca -d 'The fleet CA certificate (instead of --pki)' -r -F
complete -c backout -n "__fish_backout_using_subcommand rollback; and not __fish_seen_subcommand_from start help" -l cert -d 'Your certificate (instead of --pki/--operator)' -r -F
complete -c backout -n "__fish_backout_using_subcommand rollback; and not __fish_seen_subcommand_from start help" -l key -d 'Your private key (instead of --pki/--operator)' -r -F
complete -c backout -n "__fish_backout_using_subcommand rollback; and not __fish_seen_subcommand_from start help" -l server-name -d 'The name the coordinator\'s certificate carries (default: the host part of --coordinator)' -r
complete -c backout -n "__fish_backout_using_subcommand rollback; and not __fish_seen_subcommand_from start help" -l log -d 'Log filter (e.g. info, debug, backout=debug); also RUST_LOG' -r
complete -c backout -n "__fish_backout_using_subcommand rollback; and not __fish_seen_subcommand_from start help" -l log-format -d 'Log lines as text, or as one JSON object per line with the run, phase, step and host as fields' -r -f -a "text\t'One human-readable line per event (the default)'
json\t'One JSON object per line: the event\'s fields at the top level, and the fields of the spans it happened in (run, phase, step, host…) under `span` (the innermost) and `spans` (outermost first)'"
complete -c backout -n "__fish_backout_using_subcommand rollback; and not __fish_seen_subcommand_from start help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c backout -n "__fish_backout_using_subcommand rollback; and not __fish_seen_subcommand_from start help" -f -a "start" -d 'Start a run of the plan; it waits for the plan\'s run approvals'
complete -c backout -n "__fish_backout_using_subcommand rollback; and not __fish_seen_subcommand_from start help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c backout -n "__fish_backout_using_subcommand rollback; and __fish_seen_subcommand_from start" -l reason -d 'Why the rollback (recorded in the journal and the report)' -r
complete -c backout -n "__fish_backout_using_subcommand rollback; and __fish_seen_subcommand_from start" -l to -d 'The version to roll back to (passed to steps as `to_version`)' -r
complete -c backout -n "__fish_backout_using_subcommand rollback; and __fish_seen_subcommand_from start" -l phases -d 'Only these phases (comma-separated; default: every phase that is not optional)' -r
complete -c backout -n "__fish_backout_using_subcommand rollback; and __fish_seen_subcommand_from start" -l output -d 'text: for people; json: for programs' -r -f -a "text\t'Tables for people'
json\t'JSON for programs'"
complete -c backout -n "__fish_backout_using_subcommand rollback; and __fish_seen_subcommand_from start" -l coordinator -d 'The coordinator\'s address, host:port; with several coordinators, all of them, comma-separated (the one that leads answers)' -r
complete -c backout -n "__fish_backout_using_subcommand rollback; and __fish_seen_subcommand_from start" -l pki -d 'A PKI directory (from `backout pki`): the CA and operators/<OPERATOR>.pem/.key are taken from it' -r -F
complete -c backout -n "__fish_backout_using_subcommand rollback; and __fish_seen_subcommand_from start" -l operator -d 'Your operator name (with --pki)' -r
complete -c backout -n "__fish_backout_using_subcommand rollback; and __fish_seen_subcommand_from start" -l ca -d 'The fleet CA certificate (instead of --pki)' -r -F
complete -c backout -n "__fish_backout_using_subcommand rollback; and __fish_seen_subcommand_from start" -l cert -d 'Your certificate (instead of --pki/--operator)' -r -F
complete -c backout -n "__fish_backout_using_subcommand rollback; and __fish_seen_subcommand_from start" -l key -d 'Your private key (instead of --pki/--operator)' -r -F
complete -c backout -n "__fish_backout_using_subcommand rollback; and __fish_seen_subcommand_from start" -l server-name -d 'The name the coordinator\'s certificate carries (default: the host part of --coordinator)' -r
complete -c backout -n "__fish_backout_using_subcommand rollback; and __fish_seen_subcommand_from start" -l log -d 'Log filter (e.g. info, debug, backout=debug); also RUST_LOG' -r
complete -c backout -n "__fish_backout_using_subcommand rollback; and __fish_seen_subcommand_from start" -l log-format -d 'Log lines as text, or as one JSON object per line with the run, phase, step and host as fields' -r -f -a "text\t'One human-readable line per event (the default)'
json\t'One JSON object per line: the event\'s fields at the top level, and the fields of the spans it happened in (run, phase, step, host…) under `span` (the innermost) and `spans` (outermost first)'"
complete -c backout -n "__fish_backout_using_subcommand rollback; and __fish_seen_subcommand_from start" -l dry-run -d 'Ask each plugin what it would do; change nothing'
complete -c backout -n "__fish_backout_using_subcommand rollback; and __fish_seen_subcommand_from start" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c backout -n "__fish_backout_using_subcommand rollback; and __fish_seen_subcommand_from help" -f -a "start" -d 'Start a run of the plan; it waits for the plan\'s run approvals'
complete -c backout -n "__fish_backout_using_subcommand rollback; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c backout -n "__fish_backout_using_subcommand remedy; and not __fish_seen_subcommand_from start undo help" -l coordinator -d 'The coordinator\'s address, host:port; with several coordinators, all of them, comma-separated (the one that leads answers)' -r
complete -c backout -n "__fish_backout_using_subcommand remedy; and not __fish_seen_subcommand_from start undo help" -l pki -d 'A PKI directory (from `backout pki`): the CA and operators/<OPERATOR>.pem/.key are taken from it' -r -F
complete -c backout -n "__fish_backout_using_subcommand remedy; and not __fish_seen_subcommand_from start undo help" -l operator -d 'Your operator name (with --pki)' -r
complete -c backout -n "__fish_backout_using_subcommand remedy; and not __fish_seen_subcommand_from start undo help" -l ca -d 'The fleet CA certificate (instead of --pki)' -r -F
complete -c backout -n "__fish_backout_using_subcommand remedy; and not __fish_seen_subcommand_from start undo help" -l cert -d 'Your certificate (instead of --pki/--operator)' -r -F
complete -c backout -n "__fish_backout_using_subcommand remedy; and not __fish_seen_subcommand_from start undo help" -l key -d 'Your private key (instead of --pki/--operator)' -r -F
complete -c backout -n "__fish_backout_using_subcommand remedy; and not __fish_seen_subcommand_from start undo help" -l server-name -d 'The name the coordinator\'s certificate carries (default: the host part of --coordinator)' -r
complete -c backout -n "__fish_backout_using_subcommand remedy; and not __fish_seen_subcommand_from start undo help" -l log -d 'Log filter (e.g. info, debug, backout=debug); also RUST_LOG' -r
complete -c backout -n "__fish_backout_using_subcommand remedy; and not __fish_seen_subcommand_from start undo help" -l log-format -d 'Log lines as text, or as one JSON object per line with the run, phase, step and host as fields' -r -f -a "text\t'One human-readable line per event (the default)'
json\t'One JSON object per line: the event\'s fields at the top level, and the fields of the spans it happened in (run, phase, step, host…) under `span` (the innermost) and `spans` (outermost first)'"
complete -c backout -n "__fish_backout_using_subcommand remedy; and not __fish_seen_subcommand_from start undo help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c backout -n "__fish_backout_using_subcommand remedy; and not __fish_seen_subcommand_from start undo help" -f -a "start" -d 'Apply a trigger\'s remedy: the run of the plan\'s remedy phase for it alone (as `rollback start --phases PHASE`), approved by the trigger\'s `remedy_approvals`'
complete -c backout -n "__fish_backout_using_subcommand remedy; and not __fish_seen_subcommand_from start undo help" -f -a "undo" -d 'Undo a remedy\'s run: a run of its own that puts each flag its `flags` steps turned off back to the state they recorded first. It needs the same approvals as the remedy'
complete -c backout -n "__fish_backout_using_subcommand remedy; and not __fish_seen_subcommand_from start undo help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c backout -n "__fish_backout_using_subcommand remedy; and __fish_seen_subcommand_from start" -l reason -d 'Why (recorded in the journal and the report; default: "remedy for TRIGGER")' -r
complete -c backout -n "__fish_backout_using_subcommand remedy; and __fish_seen_subcommand_from start" -l output -d 'text: for people; json: for programs' -r -f -a "text\t'Tables for people'
json\t'JSON for programs'"
complete -c backout -n "__fish_backout_using_subcommand remedy; and __fish_seen_subcommand_from start" -l coordinator -d 'The coordinator\'s address, host:port; with several coordinators, all of them, comma-separated (the one that leads answers)' -r
complete -c backout -n "__fish_backout_using_subcommand remedy; and __fish_seen_subcommand_from start" -l pki -d 'A PKI directory (from `backout pki`): the CA and operators/<OPERATOR>.pem/.key are taken from it' -r -F
complete -c backout -n "__fish_backout_using_subcommand remedy; and __fish_seen_subcommand_from start" -l operator -d 'Your operator name (with --pki)' -r
complete -c backout -n "__fish_backout_using_subcommand remedy; and __fish_seen_subcommand_from start" -l ca -d 'The fleet CA certificate (instead of --pki)' -r -F
complete -c backout -n "__fish_backout_using_subcommand remedy; and __fish_seen_subcommand_from start" -l cert -d 'Your certificate (instead of --pki/--operator)' -r -F
complete -c backout -n "__fish_backout_using_subcommand remedy; and __fish_seen_subcommand_from start" -l key -d 'Your private key (instead of --pki/--operator)' -r -F
complete -c backout -n "__fish_backout_using_subcommand remedy; and __fish_seen_subcommand_from start" -l server-name -d 'The name the coordinator\'s certificate carries (default: the host part of --coordinator)' -r
complete -c backout -n "__fish_backout_using_subcommand remedy; and __fish_seen_subcommand_from start" -l log -d 'Log filter (e.g. info, debug, backout=debug); also RUST_LOG' -r
complete -c backout -n "__fish_backout_using_subcommand remedy; and __fish_seen_subcommand_from start" -l log-format -d 'Log lines as text, or as one JSON object per line with the run, phase, step and host as fields' -r -f -a "text\t'One human-readable line per event (the default)'
json\t'One JSON object per line: the event\'s fields at the top level, and the fields of the spans it happened in (run, phase, step, host…) under `span` (the innermost) and `spans` (outermost first)'"
complete -c backout -n "__fish_backout_using_subcommand remedy; and __fish_seen_subcommand_from start" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c backout -n "__fish_backout_using_subcommand remedy; and __fish_seen_subcommand_from undo" -l reason -d 'Why (recorded in the journal and the report; default: "undo of remedy run RUN")' -r
complete -c backout -n "__fish_backout_using_subcommand remedy; and __fish_seen_subcommand_from undo" -l output -d 'text: for people; json: for programs' -r -f -a "text\t'Tables for people'
json\t'JSON for programs'"
complete -c backout -n "__fish_backout_using_subcommand remedy; and __fish_seen_subcommand_from undo" -l coordinator -d 'The coordinator\'s address, host:port; with several coordinators, all of them, comma-separated (the one that leads answers)' -r
complete -c backout -n "__fish_backout_using_subcommand remedy; and __fish_seen_subcommand_from undo" -l pki -d 'A PKI directory (from `backout pki`): the CA and operators/<OPERATOR>.pem/.key are taken from it' -r -F
complete -c backout -n "__fish_backout_using_subcommand remedy; and __fish_seen_subcommand_from undo" -l operator -d 'Your operator name (with --pki)' -r
complete -c backout -n "__fish_backout_using_subcommand remedy; and __fish_seen_subcommand_from undo" -l ca -d 'The fleet CA certificate (instead of --pki)' -r -F
complete -c backout -n "__fish_backout_using_subcommand remedy; and __fish_seen_subcommand_from undo" -l cert -d 'Your certificate (instead of --pki/--operator)' -r -F
complete -c backout -n "__fish_backout_using_subcommand remedy; and __fish_seen_subcommand_from undo" -l key -d 'Your private key (instead of --pki/--operator)' -r -F
complete -c backout -n "__fish_backout_using_subcommand remedy; and __fish_seen_subcommand_from undo" -l server-name -d 'The name the coordinator\'s certificate carries (default: the host part of --coordinator)' -r
complete -c backout -n "__fish_backout_using_subcommand remedy; and __fish_seen_subcommand_from undo" -l log -d 'Log filter (e.g. info, debug, backout=debug); also RUST_LOG' -r
complete -c backout -n "__fish_backout_using_subcommand remedy; and __fish_seen_subcommand_from undo" -l log-format -d 'Log lines as text, or as one JSON object per line with the run, phase, step and host as fields' -r -f -a "text\t'One human-readable line per event (the default)'
json\t'One JSON object per line: the event\'s fields at the top level, and the fields of the spans it happened in (run, phase, step, host…) under `span` (the innermost) and `spans` (outermost first)'"
complete -c backout -n "__fish_backout_using_subcommand remedy; and __fish_seen_subcommand_from undo" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c backout -n "__fish_backout_using_subcommand remedy; and __fish_seen_subcommand_from help" -f -a "start" -d 'Apply a trigger\'s remedy: the run of the plan\'s remedy phase for it alone (as `rollback start --phases PHASE`), approved by the trigger\'s `remedy_approvals`'
complete -c backout -n "__fish_backout_using_subcommand remedy; and __fish_seen_subcommand_from help" -f -a "undo" -d 'Undo a remedy\'s run: a run of its own that puts each flag its `flags` steps turned off back to the state they recorded first. It needs the same approvals as the remedy'
complete -c backout -n "__fish_backout_using_subcommand remedy; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c backout -n "__fish_backout_using_subcommand approve" -l phase -d 'A gated phase (default: the run itself)' -r
complete -c backout -n "__fish_backout_using_subcommand approve" -l role -d 'Which of your roles to approve as (default: the first one still needed)' -r
complete -c backout -n "__fish_backout_using_subcommand approve" -l why -d 'Why you refuse (recorded in the journal and the report)' -r
complete -c backout -n "__fish_backout_using_subcommand approve" -l output -d 'text: for people; json: for programs' -r -f -a "text\t'Tables for people'
json\t'JSON for programs'"
complete -c backout -n "__fish_backout_using_subcommand approve" -l coordinator -d 'The coordinator\'s address, host:port; with several coordinators, all of them, comma-separated (the one that leads answers)' -r
complete -c backout -n "__fish_backout_using_subcommand approve" -l pki -d 'A PKI directory (from `backout pki`): the CA and operators/<OPERATOR>.pem/.key are taken from it' -r -F
complete -c backout -n "__fish_backout_using_subcommand approve" -l operator -d 'Your operator name (with --pki)' -r
complete -c backout -n "__fish_backout_using_subcommand approve" -l ca -d 'The fleet CA certificate (instead of --pki)' -r -F
complete -c backout -n "__fish_backout_using_subcommand approve" -l cert -d 'Your certificate (instead of --pki/--operator)' -r -F
complete -c backout -n "__fish_backout_using_subcommand approve" -l key -d 'Your private key (instead of --pki/--operator)' -r -F
complete -c backout -n "__fish_backout_using_subcommand approve" -l server-name -d 'The name the coordinator\'s certificate carries (default: the host part of --coordinator)' -r
complete -c backout -n "__fish_backout_using_subcommand approve" -l log -d 'Log filter (e.g. info, debug, backout=debug); also RUST_LOG' -r
complete -c backout -n "__fish_backout_using_subcommand approve" -l log-format -d 'Log lines as text, or as one JSON object per line with the run, phase, step and host as fields' -r -f -a "text\t'One human-readable line per event (the default)'
json\t'One JSON object per line: the event\'s fields at the top level, and the fields of the spans it happened in (run, phase, step, host…) under `span` (the innermost) and `spans` (outermost first)'"
complete -c backout -n "__fish_backout_using_subcommand approve" -l refuse -d 'Refuse instead of approving: stops the run or the phase'
complete -c backout -n "__fish_backout_using_subcommand approve" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c backout -n "__fish_backout_using_subcommand runs" -l output -d 'text: for people; json: for programs' -r -f -a "text\t'Tables for people'
json\t'JSON for programs'"
complete -c backout -n "__fish_backout_using_subcommand runs" -l coordinator -d 'The coordinator\'s address, host:port; with several coordinators, all of them, comma-separated (the one that leads answers)' -r
complete -c backout -n "__fish_backout_using_subcommand runs" -l pki -d 'A PKI directory (from `backout pki`): the CA and operators/<OPERATOR>.pem/.key are taken from it' -r -F
complete -c backout -n "__fish_backout_using_subcommand runs" -l operator -d 'Your operator name (with --pki)' -r
complete -c backout -n "__fish_backout_using_subcommand runs" -l ca -d 'The fleet CA certificate (instead of --pki)' -r -F
complete -c backout -n "__fish_backout_using_subcommand runs" -l cert -d 'Your certificate (instead of --pki/--operator)' -r -F
complete -c backout -n "__fish_backout_using_subcommand runs" -l key -d 'Your private key (instead of --pki/--operator)' -r -F
complete -c backout -n "__fish_backout_using_subcommand runs" -l server-name -d 'The name the coordinator\'s certificate carries (default: the host part of --coordinator)' -r
complete -c backout -n "__fish_backout_using_subcommand runs" -l log -d 'Log filter (e.g. info, debug, backout=debug); also RUST_LOG' -r
complete -c backout -n "__fish_backout_using_subcommand runs" -l log-format -d 'Log lines as text, or as one JSON object per line with the run, phase, step and host as fields' -r -f -a "text\t'One human-readable line per event (the default)'
json\t'One JSON object per line: the event\'s fields at the top level, and the fields of the spans it happened in (run, phase, step, host…) under `span` (the innermost) and `spans` (outermost first)'"
complete -c backout -n "__fish_backout_using_subcommand runs" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c backout -n "__fish_backout_using_subcommand watch" -l output -d 'text: bars on a terminal (plain lines otherwise); json: one JSON object per line' -r -f -a "text\t'Tables for people'
json\t'JSON for programs'"
complete -c backout -n "__fish_backout_using_subcommand watch" -l coordinator -d 'The coordinator\'s address, host:port; with several coordinators, all of them, comma-separated (the one that leads answers)' -r
complete -c backout -n "__fish_backout_using_subcommand watch" -l pki -d 'A PKI directory (from `backout pki`): the CA and operators/<OPERATOR>.pem/.key are taken from it' -r -F
complete -c backout -n "__fish_backout_using_subcommand watch" -l operator -d 'Your operator name (with --pki)' -r
complete -c backout -n "__fish_backout_using_subcommand watch" -l ca -d 'The fleet CA certificate (instead of --pki)' -r -F
complete -c backout -n "__fish_backout_using_subcommand watch" -l cert -d 'Your certificate (instead of --pki/--operator)' -r -F
complete -c backout -n "__fish_backout_using_subcommand watch" -l key -d 'Your private key (instead of --pki/--operator)' -r -F
complete -c backout -n "__fish_backout_using_subcommand watch" -l server-name -d 'The name the coordinator\'s certificate carries (default: the host part of --coordinator)' -r
complete -c backout -n "__fish_backout_using_subcommand watch" -l log -d 'Log filter (e.g. info, debug, backout=debug); also RUST_LOG' -r
complete -c backout -n "__fish_backout_using_subcommand watch" -l log-format -d 'Log lines as text, or as one JSON object per line with the run, phase, step and host as fields' -r -f -a "text\t'One human-readable line per event (the default)'
json\t'One JSON object per line: the event\'s fields at the top level, and the fields of the spans it happened in (run, phase, step, host…) under `span` (the innermost) and `spans` (outermost first)'"
complete -c backout -n "__fish_backout_using_subcommand watch" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c backout -n "__fish_backout_using_subcommand report" -l format -d 'md (Markdown), json or html' -r -f -a "md\t'Markdown, for the incident ticket'
json\t''
html\t'One self-contained page with an SVG timeline'"
complete -c backout -n "__fish_backout_using_subcommand report" -l out -d 'Write to this file instead of standard output' -r -F
complete -c backout -n "__fish_backout_using_subcommand report" -l coordinator -d 'The coordinator\'s address, host:port; with several coordinators, all of them, comma-separated (the one that leads answers)' -r
complete -c backout -n "__fish_backout_using_subcommand report" -l pki -d 'A PKI directory (from `backout pki`): the CA and operators/<OPERATOR>.pem/.key are taken from it' -r -F
complete -c backout -n "__fish_backout_using_subcommand report" -l operator -d 'Your operator name (with --pki)' -r
complete -c backout -n "__fish_backout_using_subcommand report" -l ca -d 'The fleet CA certificate (instead of --pki)' -r -F
complete -c backout -n "__fish_backout_using_subcommand report" -l cert -d 'Your certificate (instead of --pki/--operator)' -r -F
complete -c backout -n "__fish_backout_using_subcommand report" -l key -d 'Your private key (instead of --pki/--operator)' -r -F
complete -c backout -n "__fish_backout_using_subcommand report" -l server-name -d 'The name the coordinator\'s certificate carries (default: the host part of --coordinator)' -r
complete -c backout -n "__fish_backout_using_subcommand report" -l log -d 'Log filter (e.g. info, debug, backout=debug); also RUST_LOG' -r
complete -c backout -n "__fish_backout_using_subcommand report" -l log-format -d 'Log lines as text, or as one JSON object per line with the run, phase, step and host as fields' -r -f -a "text\t'One human-readable line per event (the default)'
json\t'One JSON object per line: the event\'s fields at the top level, and the fields of the spans it happened in (run, phase, step, host…) under `span` (the innermost) and `spans` (outermost first)'"
complete -c backout -n "__fish_backout_using_subcommand report" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c backout -n "__fish_backout_using_subcommand drill" -l plan -d 'The staging plan: the one the coordinator serves' -r -F
complete -c backout -n "__fish_backout_using_subcommand drill" -l phases -d 'Only these phases (comma-separated; default: every non-optional phase)' -r
complete -c backout -n "__fish_backout_using_subcommand drill" -l reason -d 'Why the drill (recorded in the journal and the report; default: "drill of PLAN-NAME")' -r
complete -c backout -n "__fish_backout_using_subcommand drill" -l out -d 'Where the drill report goes (default: drill-RUN.md here)' -r -F
complete -c backout -n "__fish_backout_using_subcommand drill" -l output -d 'text: for people; json: for programs' -r -f -a "text\t'Tables for people'
json\t'JSON for programs'"
complete -c backout -n "__fish_backout_using_subcommand drill" -l coordinator -d 'The coordinator\'s address, host:port; with several coordinators, all of them, comma-separated (the one that leads answers)' -r
complete -c backout -n "__fish_backout_using_subcommand drill" -l pki -d 'A PKI directory (from `backout pki`): the CA and operators/<OPERATOR>.pem/.key are taken from it' -r -F
complete -c backout -n "__fish_backout_using_subcommand drill" -l operator -d 'Your operator name (with --pki)' -r
complete -c backout -n "__fish_backout_using_subcommand drill" -l ca -d 'The fleet CA certificate (instead of --pki)' -r -F
complete -c backout -n "__fish_backout_using_subcommand drill" -l cert -d 'Your certificate (instead of --pki/--operator)' -r -F
complete -c backout -n "__fish_backout_using_subcommand drill" -l key -d 'Your private key (instead of --pki/--operator)' -r -F
complete -c backout -n "__fish_backout_using_subcommand drill" -l server-name -d 'The name the coordinator\'s certificate carries (default: the host part of --coordinator)' -r
complete -c backout -n "__fish_backout_using_subcommand drill" -l log -d 'Log filter (e.g. info, debug, backout=debug); also RUST_LOG' -r
complete -c backout -n "__fish_backout_using_subcommand drill" -l log-format -d 'Log lines as text, or as one JSON object per line with the run, phase, step and host as fields' -r -f -a "text\t'One human-readable line per event (the default)'
json\t'One JSON object per line: the event\'s fields at the top level, and the fields of the spans it happened in (run, phase, step, host…) under `span` (the innermost) and `spans` (outermost first)'"
complete -c backout -n "__fish_backout_using_subcommand drill" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c backout -n "__fish_backout_using_subcommand abort" -l output -d 'text: for people; json: for programs' -r -f -a "text\t'Tables for people'
json\t'JSON for programs'"
complete -c backout -n "__fish_backout_using_subcommand abort" -l coordinator -d 'The coordinator\'s address, host:port; with several coordinators, all of them, comma-separated (the one that leads answers)' -r
complete -c backout -n "__fish_backout_using_subcommand abort" -l pki -d 'A PKI directory (from `backout pki`): the CA and operators/<OPERATOR>.pem/.key are taken from it' -r -F
complete -c backout -n "__fish_backout_using_subcommand abort" -l operator -d 'Your operator name (with --pki)' -r
complete -c backout -n "__fish_backout_using_subcommand abort" -l ca -d 'The fleet CA certificate (instead of --pki)' -r -F
complete -c backout -n "__fish_backout_using_subcommand abort" -l cert -d 'Your certificate (instead of --pki/--operator)' -r -F
complete -c backout -n "__fish_backout_using_subcommand abort" -l key -d 'Your private key (instead of --pki/--operator)' -r -F
complete -c backout -n "__fish_backout_using_subcommand abort" -l server-name -d 'The name the coordinator\'s certificate carries (default: the host part of --coordinator)' -r
complete -c backout -n "__fish_backout_using_subcommand abort" -l log -d 'Log filter (e.g. info, debug, backout=debug); also RUST_LOG' -r
complete -c backout -n "__fish_backout_using_subcommand abort" -l log-format -d 'Log lines as text, or as one JSON object per line with the run, phase, step and host as fields' -r -f -a "text\t'One human-readable line per event (the default)'
json\t'One JSON object per line: the event\'s fields at the top level, and the fields of the spans it happened in (run, phase, step, host…) under `span` (the innermost) and `spans` (outermost first)'"
complete -c backout -n "__fish_backout_using_subcommand abort" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c backout -n "__fish_backout_using_subcommand audit; and not __fish_seen_subcommand_from verify archive help" -l log -d 'Log filter (e.g. info, debug, backout=debug); also RUST_LOG' -r
complete -c backout -n "__fish_backout_using_subcommand audit; and not __fish_seen_subcommand_from verify archive help" -l log-format -d 'Log lines as text, or as one JSON object per line with the run, phase, step and host as fields' -r -f -a "text\t'One human-readable line per event (the default)'
json\t'One JSON object per line: the event\'s fields at the top level, and the fields of the spans it happened in (run, phase, step, host…) under `span` (the innermost) and `spans` (outermost first)'"
complete -c backout -n "__fish_backout_using_subcommand audit; and not __fish_seen_subcommand_from verify archive help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c backout -n "__fish_backout_using_subcommand audit; and not __fish_seen_subcommand_from verify archive help" -f -a "verify" -d 'Walk the journal\'s hash chain; report the first entry that does not match. With --archive, also each archive (oldest first) and that each one ends where the next begins. With the checkpoint key (--key, or the configuration\'s checkpoint_key), check every signed checkpoint: a chain rewritten with its hashes recomputed is reported. With --checkpoint, check that the journal still holds the checkpoint a run\'s report or end message announced. Exit 0 intact, 1 broken, 2 bad input'
complete -c backout -n "__fish_backout_using_subcommand audit; and not __fish_seen_subcommand_from verify archive help" -f -a "archive" -d 'Move the entries of runs that ended before a cutoff (and the signal entries among them) into a new archive file. The archive verifies on its own, and `audit verify --archive FILE` checks that the journal left behind starts where it ends. Stop the coordinator first: the journal must not be in use'
complete -c backout -n "__fish_backout_using_subcommand audit; and not __fish_seen_subcommand_from verify archive help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c backout -n "__fish_backout_using_subcommand audit; and __fish_seen_subcommand_from verify" -l config -d 'The coordinator\'s configuration (its state_dir holds the journal)' -r -F
complete -c backout -n "__fish_backout_using_subcommand audit; and __fish_seen_subcommand_from verify" -l journal -d 'The journal file itself' -r -F
complete -c backout -n "__fish_backout_using_subcommand audit; and __fish_seen_subcommand_from verify" -l key -d 'The checkpoint key\'s public half (checkpoint-signing.pub, made by `backout pki init`); default with --config: its checkpoint_key' -r -F
complete -c backout -n "__fish_backout_using_subcommand audit; and __fish_seen_subcommand_from verify" -l checkpoint -d 'A checkpoint announced at a run\'s end (SEQ:HASH, or HASH), as its report and end message give it: the journal must still hold that entry with that hash' -r
complete -c backout -n "__fish_backout_using_subcommand audit; and __fish_seen_subcommand_from verify" -l archive -d 'An archive written by `backout audit archive`; repeat it for several, oldest first' -r -F
complete -c backout -n "__fish_backout_using_subcommand audit; and __fish_seen_subcommand_from verify" -l output -d 'text: for people; json: for programs' -r -f -a "text\t'Tables for people'
json\t'JSON for programs'"
complete -c backout -n "__fish_backout_using_subcommand audit; and __fish_seen_subcommand_from verify" -l log -d 'Log filter (e.g. info, debug, backout=debug); also RUST_LOG' -r
complete -c backout -n "__fish_backout_using_subcommand audit; and __fish_seen_subcommand_from verify" -l log-format -d 'Log lines as text, or as one JSON object per line with the run, phase, step and host as fields' -r -f -a "text\t'One human-readable line per event (the default)'
json\t'One JSON object per line: the event\'s fields at the top level, and the fields of the spans it happened in (run, phase, step, host…) under `span` (the innermost) and `spans` (outermost first)'"
complete -c backout -n "__fish_backout_using_subcommand audit; and __fish_seen_subcommand_from verify" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c backout -n "__fish_backout_using_subcommand audit; and __fish_seen_subcommand_from archive" -l config -d 'The coordinator\'s configuration (its state_dir holds the journal)' -r -F
complete -c backout -n "__fish_backout_using_subcommand audit; and __fish_seen_subcommand_from archive" -l journal -d 'The journal file itself' -r -F
complete -c backout -n "__fish_backout_using_subcommand audit; and __fish_seen_subcommand_from archive" -l before -d 'Archive what is older than this ("30d", "12h")' -r
complete -c backout -n "__fish_backout_using_subcommand audit; and __fish_seen_subcommand_from archive" -l to -d 'The archive file to write (must not exist)' -r -F
complete -c backout -n "__fish_backout_using_subcommand audit; and __fish_seen_subcommand_from archive" -l output -d 'text: for people; json: for programs' -r -f -a "text\t'Tables for people'
json\t'JSON for programs'"
complete -c backout -n "__fish_backout_using_subcommand audit; and __fish_seen_subcommand_from archive" -l log -d 'Log filter (e.g. info, debug, backout=debug); also RUST_LOG' -r
complete -c backout -n "__fish_backout_using_subcommand audit; and __fish_seen_subcommand_from archive" -l log-format -d 'Log lines as text, or as one JSON object per line with the run, phase, step and host as fields' -r -f -a "text\t'One human-readable line per event (the default)'
json\t'One JSON object per line: the event\'s fields at the top level, and the fields of the spans it happened in (run, phase, step, host…) under `span` (the innermost) and `spans` (outermost first)'"
complete -c backout -n "__fish_backout_using_subcommand audit; and __fish_seen_subcommand_from archive" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c backout -n "__fish_backout_using_subcommand audit; and __fish_seen_subcommand_from help" -f -a "verify" -d 'Walk the journal\'s hash chain; report the first entry that does not match. With --archive, also each archive (oldest first) and that each one ends where the next begins. With the checkpoint key (--key, or the configuration\'s checkpoint_key), check every signed checkpoint: a chain rewritten with its hashes recomputed is reported. With --checkpoint, check that the journal still holds the checkpoint a run\'s report or end message announced. Exit 0 intact, 1 broken, 2 bad input'
complete -c backout -n "__fish_backout_using_subcommand audit; and __fish_seen_subcommand_from help" -f -a "archive" -d 'Move the entries of runs that ended before a cutoff (and the signal entries among them) into a new archive file. The archive verifies on its own, and `audit verify --archive FILE` checks that the journal left behind starts where it ends. Stop the coordinator first: the journal must not be in use'
complete -c backout -n "__fish_backout_using_subcommand audit; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c backout -n "__fish_backout_using_subcommand plan; and not __fish_seen_subcommand_from check schema help" -l log -d 'Log filter (e.g. info, debug, backout=debug); also RUST_LOG' -r
complete -c backout -n "__fish_backout_using_subcommand plan; and not __fish_seen_subcommand_from check schema help" -l log-format -d 'Log lines as text, or as one JSON object per line with the run, phase, step and host as fields' -r -f -a "text\t'One human-readable line per event (the default)'
json\t'One JSON object per line: the event\'s fields at the top level, and the fields of the spans it happened in (run, phase, step, host…) under `span` (the innermost) and `spans` (outermost first)'"
complete -c backout -n "__fish_backout_using_subcommand plan; and not __fish_seen_subcommand_from check schema help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c backout -n "__fish_backout_using_subcommand plan; and not __fish_seen_subcommand_from check schema help" -f -a "check" -d 'Validate a plan and print a summary; exit 2 with file, line and field when invalid'
complete -c backout -n "__fish_backout_using_subcommand plan; and not __fish_seen_subcommand_from check schema help" -f -a "schema" -d 'Print a JSON Schema of the plan file, the built-in plugins\' parameters included, for an editor\'s completion and checking (e.g. taplo\'s `#:schema ./plan.schema.json` first line). docs/plan.md is the same reference for people, generated from the same types'
complete -c backout -n "__fish_backout_using_subcommand plan; and not __fish_seen_subcommand_from check schema help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c backout -n "__fish_backout_using_subcommand plan; and __fish_seen_subcommand_from check" -l output -d 'text: for people; json: for programs' -r -f -a "text\t'Tables for people'
json\t'JSON for programs'"
complete -c backout -n "__fish_backout_using_subcommand plan; and __fish_seen_subcommand_from check" -l plugins -d 'Check the steps against the plugin files (*.wasm, named by file stem) in DIR' -r -F
complete -c backout -n "__fish_backout_using_subcommand plan; and __fish_seen_subcommand_from check" -l config -d 'The coordinator\'s configuration: probes must name its checks, and its pins (with `path`) must match their files, whose schemas are used' -r -F
complete -c backout -n "__fish_backout_using_subcommand plan; and __fish_seen_subcommand_from check" -l log -d 'Log filter (e.g. info, debug, backout=debug); also RUST_LOG' -r
complete -c backout -n "__fish_backout_using_subcommand plan; and __fish_seen_subcommand_from check" -l log-format -d 'Log lines as text, or as one JSON object per line with the run, phase, step and host as fields' -r -f -a "text\t'One human-readable line per event (the default)'
json\t'One JSON object per line: the event\'s fields at the top level, and the fields of the spans it happened in (run, phase, step, host…) under `span` (the innermost) and `spans` (outermost first)'"
complete -c backout -n "__fish_backout_using_subcommand plan; and __fish_seen_subcommand_from check" -l against-fleet -d 'Check the steps against the plugins the connected agents run (asks the coordinator named by BACKOUT_COORDINATOR, BACKOUT_PKI and BACKOUT_OPERATOR, or the other BACKOUT_* connection variables)'
complete -c backout -n "__fish_backout_using_subcommand plan; and __fish_seen_subcommand_from check" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c backout -n "__fish_backout_using_subcommand plan; and __fish_seen_subcommand_from schema" -l log -d 'Log filter (e.g. info, debug, backout=debug); also RUST_LOG' -r
complete -c backout -n "__fish_backout_using_subcommand plan; and __fish_seen_subcommand_from schema" -l log-format -d 'Log lines as text, or as one JSON object per line with the run, phase, step and host as fields' -r -f -a "text\t'One human-readable line per event (the default)'
json\t'One JSON object per line: the event\'s fields at the top level, and the fields of the spans it happened in (run, phase, step, host…) under `span` (the innermost) and `spans` (outermost first)'"
complete -c backout -n "__fish_backout_using_subcommand plan; and __fish_seen_subcommand_from schema" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c backout -n "__fish_backout_using_subcommand plan; and __fish_seen_subcommand_from help" -f -a "check" -d 'Validate a plan and print a summary; exit 2 with file, line and field when invalid'
complete -c backout -n "__fish_backout_using_subcommand plan; and __fish_seen_subcommand_from help" -f -a "schema" -d 'Print a JSON Schema of the plan file, the built-in plugins\' parameters included, for an editor\'s completion and checking (e.g. taplo\'s `#:schema ./plan.schema.json` first line). docs/plan.md is the same reference for people, generated from the same types'
complete -c backout -n "__fish_backout_using_subcommand plan; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c backout -n "__fish_backout_using_subcommand dashboard" -l listen -d 'Where to serve the pages (host:port; port 0 picks one)' -r
complete -c backout -n "__fish_backout_using_subcommand dashboard" -l coordinator -d 'The coordinator\'s address, host:port; with several coordinators, all of them, comma-separated (the one that leads answers)' -r
complete -c backout -n "__fish_backout_using_subcommand dashboard" -l pki -d 'A PKI directory (from `backout pki`): the CA and operators/<OPERATOR>.pem/.key are taken from it' -r -F
complete -c backout -n "__fish_backout_using_subcommand dashboard" -l operator -d 'Your operator name (with --pki)' -r
complete -c backout -n "__fish_backout_using_subcommand dashboard" -l ca -d 'The fleet CA certificate (instead of --pki)' -r -F
complete -c backout -n "__fish_backout_using_subcommand dashboard" -l cert -d 'Your certificate (instead of --pki/--operator)' -r -F
complete -c backout -n "__fish_backout_using_subcommand dashboard" -l key -d 'Your private key (instead of --pki/--operator)' -r -F
complete -c backout -n "__fish_backout_using_subcommand dashboard" -l server-name -d 'The name the coordinator\'s certificate carries (default: the host part of --coordinator)' -r
complete -c backout -n "__fish_backout_using_subcommand dashboard" -l log -d 'Log filter (e.g. info, debug, backout=debug); also RUST_LOG' -r
complete -c backout -n "__fish_backout_using_subcommand dashboard" -l log-format -d 'Log lines as text, or as one JSON object per line with the run, phase, step and host as fields' -r -f -a "text\t'One human-readable line per event (the default)'
json\t'One JSON object per line: the event\'s fields at the top level, and the fields of the spans it happened in (run, phase, step, host…) under `span` (the innermost) and `spans` (outermost first)'"
complete -c backout -n "__fish_backout_using_subcommand dashboard" -l allow-remote -d 'Allow a non-loopback --listen address (a specific one, not 0.0.0.0: requests\' Host must name it). Anyone who reaches it acts with your certificate: put it behind your own authentication'
complete -c backout -n "__fish_backout_using_subcommand dashboard" -l open -d 'Open the dashboard in the default browser'
complete -c backout -n "__fish_backout_using_subcommand dashboard" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c backout -n "__fish_backout_using_subcommand help; and not __fish_seen_subcommand_from init pki serve agents assess guard signal whoami status rollback remedy approve runs watch report drill abort audit plan dashboard help" -f -a "init" -d 'Write a starter set that starts as written: PKI, coordinator.toml, an agent configuration per host, and a plan with one trigger, one phase and one approval. Refuses a directory that is not empty'
complete -c backout -n "__fish_backout_using_subcommand help; and not __fish_seen_subcommand_from init pki serve agents assess guard signal whoami status rollback remedy approve runs watch report drill abort audit plan dashboard help" -f -a "pki" -d 'Create the fleet PKI and issue certificates'
complete -c backout -n "__fish_backout_using_subcommand help; and not __fish_seen_subcommand_from init pki serve agents assess guard signal whoami status rollback remedy approve runs watch report drill abort audit plan dashboard help" -f -a "serve" -d 'Run the coordinator'
complete -c backout -n "__fish_backout_using_subcommand help; and not __fish_seen_subcommand_from init pki serve agents assess guard signal whoami status rollback remedy approve runs watch report drill abort audit plan dashboard help" -f -a "agents" -d 'List agents: connected or gone, version, last seen, plugins'
complete -c backout -n "__fish_backout_using_subcommand help; and not __fish_seen_subcommand_from init pki serve agents assess guard signal whoami status rollback remedy approve runs watch report drill abort audit plan dashboard help" -f -a "assess" -d 'Phase 1.1: run the health checks on every agent now and print one table'
complete -c backout -n "__fish_backout_using_subcommand help; and not __fish_seen_subcommand_from init pki serve agents assess guard signal whoami status rollback remedy approve runs watch report drill abort audit plan dashboard help" -f -a "guard" -d 'Watch the decision matrix after a deploy; act when a trigger fires'
complete -c backout -n "__fish_backout_using_subcommand help; and not __fish_seen_subcommand_from init pki serve agents assess guard signal whoami status rollback remedy approve runs watch report drill abort audit plan dashboard help" -f -a "signal" -d 'Set manual signals and record counted events'
complete -c backout -n "__fish_backout_using_subcommand help; and not __fish_seen_subcommand_from init pki serve agents assess guard signal whoami status rollback remedy approve runs watch report drill abort audit plan dashboard help" -f -a "whoami" -d 'Show who the coordinator thinks you are, and your roles'
complete -c backout -n "__fish_backout_using_subcommand help; and not __fish_seen_subcommand_from init pki serve agents assess guard signal whoami status rollback remedy approve runs watch report drill abort audit plan dashboard help" -f -a "status" -d 'Show which coordinator leads: its lease epoch and age, the standbys'
complete -c backout -n "__fish_backout_using_subcommand help; and not __fish_seen_subcommand_from init pki serve agents assess guard signal whoami status rollback remedy approve runs watch report drill abort audit plan dashboard help" -f -a "rollback" -d 'Start a rollback run'
complete -c backout -n "__fish_backout_using_subcommand help; and not __fish_seen_subcommand_from init pki serve agents assess guard signal whoami status rollback remedy approve runs watch report drill abort audit plan dashboard help" -f -a "remedy" -d 'Apply a trigger\'s lighter remedy, or undo it (each a run of its own)'
complete -c backout -n "__fish_backout_using_subcommand help; and not __fish_seen_subcommand_from init pki serve agents assess guard signal whoami status rollback remedy approve runs watch report drill abort audit plan dashboard help" -f -a "approve" -d 'Approve (or refuse) a run or one of its gated phases, under your own certificate'
complete -c backout -n "__fish_backout_using_subcommand help; and not __fish_seen_subcommand_from init pki serve agents assess guard signal whoami status rollback remedy approve runs watch report drill abort audit plan dashboard help" -f -a "runs" -d 'List runs with their status and the approvals they wait for'
complete -c backout -n "__fish_backout_using_subcommand help; and not __fish_seen_subcommand_from init pki serve agents assess guard signal whoami status rollback remedy approve runs watch report drill abort audit plan dashboard help" -f -a "watch" -d 'Follow a run live: a progress bar per phase and host, plugins\' log lines, approvals waited on, the final result. Any number of people can watch the same run. Exit 0 when the run succeeds, 1 otherwise'
complete -c backout -n "__fish_backout_using_subcommand help; and not __fish_seen_subcommand_from init pki serve agents assess guard signal whoami status rollback remedy approve runs watch report drill abort audit plan dashboard help" -f -a "report" -d 'The post-rollback report of a run: summary, timeline, approvals, versions, impact, escalation, success criteria, follow-ups'
complete -c backout -n "__fish_backout_using_subcommand help; and not __fish_seen_subcommand_from init pki serve agents assess guard signal whoami status rollback remedy approve runs watch report drill abort audit plan dashboard help" -f -a "drill" -d 'Rehearse the plan against its staging fleet: a real run with its approvals, followed live; then a drill report with each phase\'s time against the last drill\'s, and the plan file stamped with the date and the figures. Refuses a coordinator that serves another plan'
complete -c backout -n "__fish_backout_using_subcommand help; and not __fish_seen_subcommand_from init pki serve agents assess guard signal whoami status rollback remedy approve runs watch report drill abort audit plan dashboard help" -f -a "abort" -d 'Abort a run: nothing more is dispatched'
complete -c backout -n "__fish_backout_using_subcommand help; and not __fish_seen_subcommand_from init pki serve agents assess guard signal whoami status rollback remedy approve runs watch report drill abort audit plan dashboard help" -f -a "audit" -d 'Check the journal\'s hash chain'
complete -c backout -n "__fish_backout_using_subcommand help; and not __fish_seen_subcommand_from init pki serve agents assess guard signal whoami status rollback remedy approve runs watch report drill abort audit plan dashboard help" -f -a "plan" -d 'Work with plan files'
complete -c backout -n "__fish_backout_using_subcommand help; and not __fish_seen_subcommand_from init pki serve agents assess guard signal whoami status rollback remedy approve runs watch report drill abort audit plan dashboard help" -f -a "dashboard" -d 'Serve the incident on a local web page: matrix, fleet, runs live, approvals and reports, acting under your own certificate'
complete -c backout -n "__fish_backout_using_subcommand help; and not __fish_seen_subcommand_from init pki serve agents assess guard signal whoami status rollback remedy approve runs watch report drill abort audit plan dashboard help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c backout -n "__fish_backout_using_subcommand help; and __fish_seen_subcommand_from pki" -f -a "init" -d 'Create the fleet CA, the coordinator\'s TLS certificate, its separate ed25519 command-signing key pair, and the ed25519 key pair that signs the journal\'s checkpoints (operators keep checkpoint-signing.pub)'
complete -c backout -n "__fish_backout_using_subcommand help; and __fish_seen_subcommand_from pki" -f -a "issue" -d 'Issue a certificate for an agent or an operator'
complete -c backout -n "__fish_backout_using_subcommand help; and __fish_seen_subcommand_from pki" -f -a "renew" -d 'Renew a certificate in place: a new key and certificate replace the old ones. A running coordinator picks up its renewed certificate at the next handshake; an agent at its next (re)connection. The old certificate stays valid until it expires: revoke it if it must stop'
complete -c backout -n "__fish_backout_using_subcommand help; and __fish_seen_subcommand_from pki" -f -a "revoke" -d 'Revoke an agent\'s or operator\'s certificate: add it to the CA-signed revocation list DIR/crl.pem and sign the list again with a new next-update time. Without KIND and NAME, only re-signs the list (run it before the next update passes: a coordinator refuses every client certificate while its list is out of date). The coordinator reads the list named by `crl = ...` in its configuration, again whenever it changes'
complete -c backout -n "__fish_backout_using_subcommand help; and __fish_seen_subcommand_from signal" -f -a "set" -d 'Set a manual signal, recorded with your identity'
complete -c backout -n "__fish_backout_using_subcommand help; and __fish_seen_subcommand_from signal" -f -a "event" -d 'Record counted events (e.g. one critical ticket)'
complete -c backout -n "__fish_backout_using_subcommand help; and __fish_seen_subcommand_from rollback" -f -a "start" -d 'Start a run of the plan; it waits for the plan\'s run approvals'
complete -c backout -n "__fish_backout_using_subcommand help; and __fish_seen_subcommand_from remedy" -f -a "start" -d 'Apply a trigger\'s remedy: the run of the plan\'s remedy phase for it alone (as `rollback start --phases PHASE`), approved by the trigger\'s `remedy_approvals`'
complete -c backout -n "__fish_backout_using_subcommand help; and __fish_seen_subcommand_from remedy" -f -a "undo" -d 'Undo a remedy\'s run: a run of its own that puts each flag its `flags` steps turned off back to the state they recorded first. It needs the same approvals as the remedy'
complete -c backout -n "__fish_backout_using_subcommand help; and __fish_seen_subcommand_from audit" -f -a "verify" -d 'Walk the journal\'s hash chain; report the first entry that does not match. With --archive, also each archive (oldest first) and that each one ends where the next begins. With the checkpoint key (--key, or the configuration\'s checkpoint_key), check every signed checkpoint: a chain rewritten with its hashes recomputed is reported. With --checkpoint, check that the journal still holds the checkpoint a run\'s report or end message announced. Exit 0 intact, 1 broken, 2 bad input'
complete -c backout -n "__fish_backout_using_subcommand help; and __fish_seen_subcommand_from audit" -f -a "archive" -d 'Move the entries of runs that ended before a cutoff (and the signal entries among them) into a new archive file. The archive verifies on its own, and `audit verify --archive FILE` checks that the journal left behind starts where it ends. Stop the coordinator first: the journal must not be in use'
complete -c backout -n "__fish_backout_using_subcommand help; and __fish_seen_subcommand_from plan" -f -a "check" -d 'Validate a plan and print a summary; exit 2 with file, line and field when invalid'
complete -c backout -n "__fish_backout_using_subcommand help; and __fish_seen_subcommand_from plan" -f -a "schema" -d 'Print a JSON Schema of the plan file, the built-in plugins\' parameters included, for an editor\'s completion and checking (e.g. taplo\'s `#:schema ./plan.schema.json` first line). docs/plan.md is the same reference for people, generated from the same types'
