package lab

// Authentication scripts for ServerOptions.AuthScript, shared by the interop and daemon tests.

// StaticChallengeScript is an AuthScript that accepts alice with password s3cret and code 123456 in SCRV1 form.
const StaticChallengeScript = `user=$(sed -n 1p "$1")
pass=$(sed -n 2p "$1")
case "$pass" in SCRV1:*:*) ;; *) echo "no static challenge response" > "$auth_failed_reason_file"; exit 1;; esac
pw=$(printf %s "$pass" | cut -d: -f2 | base64 -d)
code=$(printf %s "$pass" | cut -d: -f3 | base64 -d)
[ "$user" = alice ] && [ "$pw" = s3cret ] && [ "$code" = 123456 ] && exit 0
echo "wrong one-time code" > "$auth_failed_reason_file"
exit 1
`

// CRV1Script is an AuthScript that answers alice/s3cret with a CRV1 challenge for the user "alice@lab" and accepts
// its state id with the response 2468.
const CRV1Script = `user=$(sed -n 1p "$1")
pass=$(sed -n 2p "$1")
if [ "$user" = alice ] && [ "$pass" = s3cret ]; then
	printf 'CRV1:R:st-0815:%s:Enter the PIN: sent by SMS' "$(printf alice@lab | base64)" > "$auth_failed_reason_file"
	exit 1
fi
[ "$user" = alice@lab ] && [ "$pass" = "CRV1::st-0815::2468" ] && exit 0
echo "wrong PIN" > "$auth_failed_reason_file"
exit 1
`
