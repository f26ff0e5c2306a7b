#!/bin/sh
# Dovecot post-login script of DovecotServer (dovecot_server.h), for POP-before-SMTP: records the
# time of this successful POP3 login for the client's address ($IP) in the folder named in the file
# pop_before_smtp_directory beside this script (read by postfix_pop_before_smtp_policy.sh), then
# continues the login.
umask 022
dir=$(cat "${0%/*}/pop_before_smtp_directory" 2>/dev/null) || dir=
case $IP in
  *[!0-9a-fA-F.:]* | "") ;;
  *)
    if [ -n "$dir" ]; then
      date +%s > "$dir/.$IP.$$" && mv -f "$dir/.$IP.$$" "$dir/$IP"
    fi ;;
esac
exec "$@"
