# bash completion for ovpnctl                                   -*- shell-script -*-

_ovpnctl_sessions() {
    ovpnctl list --json 2>/dev/null | sed -n 's/^ *"name": "\(.*\)",$/\1/p'
}

_ovpnctl() {
    local cur prev words cword
    _init_completion || return
    local commands="up down restart status list log stats auth check import remove"
    if [[ $cword -eq 1 ]]; then
        COMPREPLY=($(compgen -W "$commands" -- "$cur"))
        return
    fi
    case ${words[1]} in
        up)
            case $prev in
                --name|--timeout) return ;;
            esac
            if [[ $cur == -* ]]; then
                COMPREPLY=($(compgen -W "--name --timeout --verbose" -- "$cur"))
            else
                _filedir '@(conf|ovpn)'
            fi
            ;;
        import)
            if [[ $cur == -* ]]; then
                COMPREPLY=($(compgen -W "--name" -- "$cur"))
            else
                _filedir '@(conf|ovpn)'
            fi
            ;;
        remove)
            COMPREPLY=($(compgen -W "$(ovpnctl list --profiles 2>/dev/null | grep -v '^no stored profiles$')" -- "$cur"))
            ;;
        check)
            if [[ $cur == -* ]]; then
                COMPREPLY=($(compgen -W "--print" -- "$cur"))
            else
                _filedir '@(conf|ovpn)'
            fi
            ;;
        import)
            case $prev in
                --name) return ;;
            esac
            if [[ $cur == -* ]]; then
                COMPREPLY=($(compgen -W "--nm --name" -- "$cur"))
            else
                _filedir '@(conf|ovpn)'
            fi
            ;;
        down|restart|auth)
            COMPREPLY=($(compgen -W "$(_ovpnctl_sessions)" -- "$cur"))
            ;;
        status|stats)
            COMPREPLY=($(compgen -W "--json $(_ovpnctl_sessions)" -- "$cur"))
            ;;
        log)
            COMPREPLY=($(compgen -W "-f --json $(_ovpnctl_sessions)" -- "$cur"))
            ;;
        list)
            COMPREPLY=($(compgen -W "--json" -- "$cur"))
            ;;
    esac
} &&
    complete -F _ovpnctl ovpnctl
