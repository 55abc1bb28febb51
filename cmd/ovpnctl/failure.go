package main

import (
	"os/user"
	"strconv"
	"strings"
)

// authFailedPrefix starts the reason of a session the server refused (session.ErrAuthFailed
// wrapped with the server's words), as the daemon reports it in StateReason.
const authFailedPrefix = "authentication failed"

// failureCode is the exit status of `up` for a session that ended with reason: a refused
// password gets its own, so scripts can tell it from a network failure worth retrying.
func failureCode(reason string) int {
	if strings.HasPrefix(reason, authFailedPrefix) {
		return exitAuthFailed
	}
	return exitFail
}

// userName is how a session's owner is shown: the login name, or the uid when the user
// database does not know it.
func userName(uid uint32) string {
	u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10))
	if err != nil {
		return strconv.FormatUint(uint64(uid), 10)
	}
	return u.Username
}
