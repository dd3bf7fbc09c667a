# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_backout_agent_global_optspecs
    string join \n config= sessions-from= log= log-format= h/help V/version
end

function __fish_backout_agent_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_backout_agent_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_backout_agent_using_subcommand
    set -l cmd (__fish_backout_agent_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c backout-agent -n "__fish_backout_agent_needs_command" -l config -d 'The agent\'s configuration file' -r -F
complete -c backout-agent -n "__fish_backout_agent_needs_command" -l sessions-from -d 'Load testing only: run one session per `<id>.pem` + `<id>.key` pair in DIR (e.g. a PKI\'s `agents/` folder) in this one process, each under its own certificate; they share one `<state_dir>/agent.db` (each session\'s steps under its id) and commit its writes together. The configuration\'s `[tls] cert` and `key` are then ignored (its `ca` is used); the compiled plugins are shared. Needs about 8 open files per session' -r -F
complete -c backout-agent -n "__fish_backout_agent_needs_command" -l log -d 'Log filter (e.g. info, debug); also RUST_LOG' -r
complete -c backout-agent -n "__fish_backout_agent_needs_command" -l log-format -d 'Log lines as text, or as one JSON object per line with the run, phase, step and host as fields' -r -f -a "text\t'One human-readable line per event (the default)'
json\t'One JSON object per line: the event\'s fields at the top level, and the fields of the spans it happened in (run, phase, step, host…) under `span` (the innermost) and `spans` (outermost first)'"
complete -c backout-agent -n "__fish_backout_agent_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c backout-agent -n "__fish_backout_agent_needs_command" -s V -l version -d 'Print version'
complete -c backout-agent -n "__fish_backout_agent_needs_command" -f -a "plugin" -d 'Work with plugin components without a coordinator'
complete -c backout-agent -n "__fish_backout_agent_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c backout-agent -n "__fish_backout_agent_using_subcommand plugin; and not __fish_seen_subcommand_from run help" -s h -l help -d 'Print help'
complete -c backout-agent -n "__fish_backout_agent_using_subcommand plugin; and not __fish_seen_subcommand_from run help" -f -a "run" -d 'Run one step of a plugin here, in the same sandbox and under the same kind of grants as an agent runs it, and print the outcome. Nothing is granted unless given. Exit 0 when the step succeeded, 1 when it failed, 2 on bad input (a file, a flag, a plugin that does not load)'
complete -c backout-agent -n "__fish_backout_agent_using_subcommand plugin; and not __fish_seen_subcommand_from run help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c backout-agent -n "__fish_backout_agent_using_subcommand plugin; and __fish_seen_subcommand_from run" -l params -d 'The step\'s params: JSON text, or @FILE to read them from a file' -r
complete -c backout-agent -n "__fish_backout_agent_using_subcommand plugin; and __fish_seen_subcommand_from run" -l grant -d 'A grant, KIND=VALUE (repeat): programs=git, dry_run_programs="git log", urls=http://127.0.0.1:8080/, read=/var/log/app, write=/opt/app, secrets=NAME' -r
complete -c backout-agent -n "__fish_backout_agent_using_subcommand plugin; and __fish_seen_subcommand_from run" -l secret -d 'A secret for the plugin, granted to it (repeat): NAME (from the environment variable NAME), NAME=env:VAR or NAME=file:PATH. Values are never given on the command line' -r
complete -c backout-agent -n "__fish_backout_agent_using_subcommand plugin; and __fish_seen_subcommand_from run" -l timeout -d 'The step\'s deadline (default: the agent\'s, 60s)' -r
complete -c backout-agent -n "__fish_backout_agent_using_subcommand plugin; and __fish_seen_subcommand_from run" -l output -d 'text: the events and the outcome for people; json: one JSON object' -r -f -a "text\t'Lines for people'
json\t'One JSON object for programs'"
complete -c backout-agent -n "__fish_backout_agent_using_subcommand plugin; and __fish_seen_subcommand_from run" -l dry-run -d 'Ask the plugin what it would do: writes, exec (but dry_run_programs) and HTTP methods other than GET and HEAD are refused'
complete -c backout-agent -n "__fish_backout_agent_using_subcommand plugin; and __fish_seen_subcommand_from run" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c backout-agent -n "__fish_backout_agent_using_subcommand plugin; and __fish_seen_subcommand_from help" -f -a "run" -d 'Run one step of a plugin here, in the same sandbox and under the same kind of grants as an agent runs it, and print the outcome. Nothing is granted unless given. Exit 0 when the step succeeded, 1 when it failed, 2 on bad input (a file, a flag, a plugin that does not load)'
complete -c backout-agent -n "__fish_backout_agent_using_subcommand plugin; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c backout-agent -n "__fish_backout_agent_using_subcommand help; and not __fish_seen_subcommand_from plugin help" -f -a "plugin" -d 'Work with plugin components without a coordinator'
complete -c backout-agent -n "__fish_backout_agent_using_subcommand help; and not __fish_seen_subcommand_from plugin help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c backout-agent -n "__fish_backout_agent_using_subcommand help; and __fish_seen_subcommand_from plugin" -f -a "run" -d 'Run one step of a plugin here, in the same sandbox and under the same kind of grants as an agent runs it, and print the outcome. Nothing is granted unless given. Exit 0 when the step succeeded, 1 when it failed, 2 on bad input (a file, a flag, a plugin that does not load)'
