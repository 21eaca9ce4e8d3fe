#!/usr/bin/env bash
# Print the Debian packages (pinned, one per line) of the languages in $SANDPIT_LANGUAGES ("all" or unset:
# every language; else a comma-separated list of names as in service/languages/definitions.py), then the
# base list every deployment needs (Python with its scientific stack, bash). Used by install-deps.sh for
# `make up` and by sandbox_images/Dockerfile for the worker image, so both install the same toolchains.
set -euo pipefail
here=$(dirname "$0")
wanted=${SANDPIT_LANGUAGES:-all}

strip() { sed -e 's/#.*//' -e 's/[[:space:]]//g' -e '/^$/d' "$@"; }

if [[ $wanted == all ]]; then
  lists=("$here"/languages/*.txt)
else
  lists=()
  IFS=, read -r -a names <<< "$wanted"
  for name in "${names[@]}"; do
    name=${name//[[:space:]]/}
    [[ -z $name ]] && continue
    if [[ ! -f $here/languages/$name.txt ]]; then
      known=$(cd "$here/languages" && ls ./*.txt | sed -e 's|^\./||' -e 's/\.txt$//' | tr '\n' ' ')
      echo "SANDPIT_LANGUAGES: unknown language '$name' (known: $known)" >&2
      exit 2
    fi
    lists+=("$here/languages/$name.txt")
  done
fi
{ strip "$here/sandbox-packages.txt"; strip "${lists[@]}"; } | awk '!seen[$0]++'
