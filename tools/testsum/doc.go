// Command testsum runs `go test -json` (or reads its output from stdin) and
// prints, per run, a line for each package that ran tests, the output of
// every failing test and package, the reason of every skipped test, and a
// closing count:
//
//	vm-6.1: 12 passed, 0 failed, 3 skipped
//
// It exits non-zero when a test or package failed, a build failed, or the
// command itself failed, so a make target can chain several runs.
//
//	testsum -label host -- go test -json -count=1 -run '^TestPriv' ./...
//	go test -json ./... | testsum -label unit
package main
