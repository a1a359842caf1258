# Bash completion for ardkit: the commands, each command's options (read from its own --help, so
# they never drift), plugin names for `plugins show`, and experiment files. Installed as
# share/bash-completion/completions/ardkit; from a checkout, `source tools/completion/ardkit.bash`.
_ardkit() {
  local cur=${COMP_WORDS[COMP_CWORD]} command=${COMP_WORDS[1]:-} self=${COMP_WORDS[0]}
  COMPREPLY=()
  if ((COMP_CWORD == 1)); then
    mapfile -t COMPREPLY < <(compgen -W "run validate plugins eval export grid report analyze
      zoo --help --version" -- "$cur")
    return
  fi
  if [[ $cur == -* ]]; then
    local options
    options=$("$self" "$command" --help 2> /dev/null | grep -oE -- '--[a-z][a-z-]*' | sort -u)
    mapfile -t COMPREPLY < <(compgen -W "$options" -- "$cur")
    return
  fi
  case $command in
    plugins)
      if ((COMP_CWORD == 2)); then
        mapfile -t COMPREPLY < <(compgen -W "list show" -- "$cur")
      elif [[ ${COMP_WORDS[2]} == show ]]; then
        local names
        names=$("$self" plugins list 2> /dev/null |
          awk '$1 ~ /^(attack|data|generator|hook|model|objective)$/ {print $2}')
        mapfile -t COMPREPLY < <(compgen -W "$names" -- "$cur")
      fi
      ;;
    run | validate | grid)
      [[ $command == grid && COMP_CWORD -eq 2 ]] &&
        mapfile -t COMPREPLY < <(compgen -W "status" -- "$cur")
      local files
      mapfile -t files < <(compgen -f -X '!*.toml' -- "$cur"; compgen -d -- "$cur")
      COMPREPLY+=("${files[@]}")
      ;;
    *)
      mapfile -t COMPREPLY < <(compgen -f -- "$cur")
      ;;
  esac
}
complete -o filenames -F _ardkit ardkit
