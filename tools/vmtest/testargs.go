package main

import (
	"strings"
	"time"
)

// testFlag returns the value of the test binary flag -test.<name> in args,
// in any of the forms go test passes: -test.name=v, -test.name v, and with
// two leading dashes.
func testFlag(args []string, name string) (string, bool) {
	val, found := "", false
	for i := 0; i < len(args); i++ {
		k, v, hasValue := strings.Cut(strings.TrimLeft(args[i], "-"), "=")
		if !strings.HasPrefix(args[i], "-") || k != "test."+name {
			if args[i] == "--" {
				break
			}
			continue
		}
		found = true
		if hasValue {
			val = v
		} else if i+1 < len(args) && !isBoolTestFlag(name) {
			val = args[i+1]
			i++
		} else {
			val = "true"
		}
	}
	return val, found
}

// isBoolTestFlag reports the testing flags that take no separate value.
func isBoolTestFlag(name string) bool {
	switch name {
	case "v", "short", "failfast", "benchmem", "paniconexit0", "fullpath":
		return true
	}
	return false
}

// dropTestFlag removes -test.<name> and its value from args.
func dropTestFlag(args []string, name string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		k, _, hasValue := strings.Cut(strings.TrimLeft(args[i], "-"), "=")
		if strings.HasPrefix(args[i], "-") && k == "test."+name {
			if !hasValue && !isBoolTestFlag(name) {
				i++
			}
			continue
		}
		out = append(out, args[i])
	}
	return out
}

// topLevelPattern returns the part of a -test.run pattern that selects
// top-level tests: everything before the first slash that is not inside
// brackets or parentheses (the testing package splits patterns the same way).
func topLevelPattern(run string) string {
	depth := 0
	for i := 0; i < len(run); i++ {
		switch run[i] {
		case '[', '(':
			depth++
		case ']', ')':
			if depth > 0 {
				depth--
			}
		case '\\':
			i++
		case '/':
			if depth == 0 {
				return run[:i]
			}
		}
	}
	return run
}

// guestTimeout returns how long the guest may run: the test binary's own
// -test.timeout plus time to boot and power off, so the test's timeout
// report (with its goroutine dump) comes first; fallback when the tests run
// without a timeout.
func guestTimeout(args []string, fallback time.Duration) time.Duration {
	d, ok := testTimeout(args)
	if !ok {
		return fallback
	}
	return d + bootMargin
}

// testTimeout returns the test binary's -test.timeout, when it has one.
func testTimeout(args []string) (time.Duration, bool) {
	v, ok := testFlag(args, "timeout")
	if !ok {
		return 0, false
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, false
	}
	return d, true
}

// reportMargin is the time, counted from this program's start, that the
// test may run past its -test.timeout, boot included: the test then still
// panics with its list of running tests before the guest is stopped at
// bootMargin.
const reportMargin = 35 * time.Second

// bootMargin is the time added to -test.timeout for booting and powering
// off the guest. go test itself kills an -exec program one minute after the
// test timeout, so the margin stays below that.
const bootMargin = 50 * time.Second
