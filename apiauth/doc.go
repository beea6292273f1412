// Package apiauth guards Vigil's read-only APIs (the web UI, the Hubble
// Observer API, the relay): a bearer token read from a file, or TLS with
// client certificates (mTLS). Certificates and the token are re-read when
// their files change, so that a rotated Kubernetes Secret takes effect
// without a restart. A listener on a non-loopback address must have one of
// the two (Config.Validate says so, naming the flag).
package apiauth
