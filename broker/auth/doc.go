// Package auth reads the broker's authentication and authorization files in
// the formats Mosquitto uses, so users can bring the files they already have:
// the password file written by mosquitto_passwd and the acl_file.
//
// The broker core calls it on every CONNECT (PasswordFile.Verify), PUBLISH
// (ACL.CanPublish), SUBSCRIBE (ACL.CanSubscribe) and delivery (ACL.CanRead);
// the operator runs the same parsers to validate what it renders before any
// pod sees it. Both parsed forms are immutable, so a reload builds a new
// value and swaps it in atomically; Revision and Fingerprint let the broker
// tell what changed without keeping secrets around.
//
// # Password file
//
// One "username:hash" entry a line; blank lines and lines starting with '#'
// are ignored. Two hash forms are understood, both with standard base64
// (with padding) and a 12-byte salt:
//
//	alice:$7$101$<salt>$<hash>   PBKDF2-HMAC-SHA512, <iterations> rounds, 64-byte hash
//	                             (mosquitto_passwd's default since Mosquitto 2.0)
//	bob:$6$<salt>$<hash>         SHA-512(password || salt)
//	                             (mosquitto_passwd -H sha512, Mosquitto 1.6 and older)
//
// Unlike Mosquitto, which drops a malformed entry with a log line and starts
// anyway, a malformed line is a parse error that names the file and line, so
// a typo cannot silently lock a user out.
//
// # ACL file
//
//	# Lines before the first "user" line apply to anonymous clients only.
//	topic read $SYS/broker/uptime
//
//	user alice
//	topic readwrite devices/alice/#
//	topic deny devices/alice/secret
//	# No access word: readwrite.
//	topic sensors/#
//
//	# Patterns apply to every client: %c is its client ID, %u its username.
//	pattern write devices/%c/state
//	pattern read users/%u/inbox/#
//
// A "topic" or "pattern" line is the keyword, an optional access (read,
// write, readwrite or deny; readwrite when left out) and a topic filter,
// which is the rest of the line and may contain spaces (as in Mosquitto, a
// filter with a space in it needs an explicit access). Leading and trailing
// blanks are ignored; a '#' starts a comment only at the start of a line,
// since it is also the multi-level wildcard. Access is denied unless a line grants it, and a
// matching deny line wins over every grant, whichever section it comes from.
//
// Wildcards follow the MQTT matching rules, including [MQTT-4.7.2-1]: a
// filter that starts with a wildcard does not match a topic that starts with
// '$', so "topic read #" does not expose $SYS; grant "$SYS/#" to do that.
//
// A SUBSCRIBE carries a filter rather than a topic, so CanSubscribe allows
// it when some read grant overlaps the filter (some topic could match both)
// and no deny line covers all of it; every message delivered through the
// subscription is then checked again with CanRead. Mosquitto 2 accepts every
// subscription and only filters deliveries; refusing subscriptions that can
// never receive anything gives the client an honest SUBACK instead.
//
// # Pattern substitution
//
// A pattern must never let a client reach outside its own place in the
// topic tree. Mosquitto refuses pattern access to a client whose username or
// client ID contains '+' or '#'; this package goes further and treats a
// value as unsafe when it is empty, contains '+', '#', '/' or U+0000, or
// starts with '$' where the placeholder starts the filter. An unsafe value
// never grants anything through a pattern (client "a/b" must not reach the
// subtree of client "a"), and a deny pattern that would substitute an
// unsafe value denies everything, because what it was meant to cover
// cannot be known. Pattern lines that use %u do not apply to anonymous
// clients at all, as in Mosquitto.
package auth
