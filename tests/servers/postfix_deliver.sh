#!/bin/sh
# Postfix pipe(8) transport of PostfixServer (postfix_server.h): stores one message for one
# recipient exactly as Postfix hands it over, where the test reads it.
#   postfix_deliver.sh MAIL_DIR SENDER RECIPIENT < message
# Writes MAIL_DIR/<recipient>/<time>.<pid>.envelope (a sender line and a recipient line), then
# <time>.<pid>.eml by rename, so a visible .eml is complete. Exit status 75 (EX_TEMPFAIL) makes
# Postfix retry later.
folder=$1/$(printf '%s' "$3" | tr '/' '_')
name=$(date +%s%N).$$
mkdir -p "$folder" &&
  printf '%s\n%s\n' "$2" "$3" > "$folder/$name.envelope" &&
  cat > "$folder/.$name.eml" &&
  mv "$folder/.$name.eml" "$folder/$name.eml" || exit 75
