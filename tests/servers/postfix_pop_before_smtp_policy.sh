#!/bin/sh
# Postfix policy service (SMTPD_POLICY_README) of PostfixServer for POP-before-SMTP: answers OK when
# the client's address logged in to POP3 within the last TTL seconds, DUNNO (no decision) otherwise.
#   postfix_pop_before_smtp_policy.sh LOGIN_DIR TTL_SECONDS
# LOGIN_DIR/<client address> holds the time (seconds since the epoch) of that address's last POP3
# login, written by Dovecot's post-login script (dovecot_postlogin.sh). Postfix's spawn(8) runs
# this once per SMTP session; it answers each request (attribute lines ending with an empty line).
dir=$1 ttl=$2 client=
while IFS= read -r line; do
  case $line in
    client_address=*) client=${line#client_address=} ;;
    "")
      action=DUNNO
      case $client in
        *[!0-9a-fA-F.:]* | "") ;;
        *)
          if login=$(cat "$dir/$client" 2>/dev/null) && [ $(($(date +%s) - login)) -le "$ttl" ]; then
            action=OK
          fi ;;
      esac
      printf 'action=%s\n\n' "$action"
      client= ;;
  esac
done
