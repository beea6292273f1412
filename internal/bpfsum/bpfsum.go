// Package bpfsum records what the committed BPF objects were built from: a
// hash of the C files (and what they include) and the compiler and libbpf versions. A
// package's tests compare the record with the sources, so an object that no
// longer matches its sources fails the suite instead of shipping stale code.
package bpfsum

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// Compiler is the clang binary objects are built with.
const Compiler = "clang-19"

// Record is the content of a bpf_sources.sum file.
type Record struct {
	// Files are the C files the package's objects are built from,
	// relative to the source directory; empty means the whole tree.
	Files   []string
	Sources string // sha256 of the files and every header they include
	Clang   string // first line of `clang-19 --version`
	Libbpf  string // version of the libbpf headers
}

var includeRE = regexp.MustCompile(`(?m)^\s*#\s*include\s+"([^"]+)"`)

// Dependencies returns the given C files (relative to dir) and every file
// they include with quotes, found next to the including file, in dir or in
// dir/include, as the build's -I flags do. With no files, it returns every
// regular file below dir.
func Dependencies(dir string, files []string) ([]string, error) {
	if len(files) == 0 {
		var all []string
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.Type().IsRegular() {
				all = append(all, p)
			}
			return nil
		})
		sort.Strings(all)
		return all, err
	}
	seen := map[string]bool{}
	var visit func(path string) error
	visit = func(path string) error {
		path = filepath.Clean(path)
		if seen[path] {
			return nil
		}
		seen[path] = true
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range includeRE.FindAllSubmatch(b, -1) {
			name := string(m[1])
			found := false
			for _, base := range []string{filepath.Dir(path), dir, filepath.Join(dir, "include")} {
				cand := filepath.Join(base, name)
				if _, err := os.Stat(cand); err == nil {
					if err := visit(cand); err != nil {
						return err
					}
					found = true
					break
				}
			}
			if !found {
				return fmt.Errorf("%s includes %q, which is not under %s", path, name, dir)
			}
		}
		return nil
	}
	for _, f := range files {
		if err := visit(filepath.Join(dir, f)); err != nil {
			return nil, err
		}
	}
	out := make([]string, 0, len(seen))
	for p := range seen {
		out = append(out, p)
	}
	sort.Strings(out)
	return out, nil
}

// HashSources hashes the given C files below dir and everything they
// include (names relative to dir and contents, in lexical order); with no
// files, every file below dir.
func HashSources(dir string, files ...string) (string, error) {
	files, err := Dependencies(dir, files)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	for _, f := range files {
		rel, _ := filepath.Rel(dir, f)
		b, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", filepath.ToSlash(rel), len(b))
		h.Write(b)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// ClangVersion returns the first line of the compiler's --version output.
func ClangVersion() (string, error) {
	out, err := exec.Command(Compiler, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("%s --version: %w", Compiler, err)
	}
	line, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(line), nil
}

var libbpfVersion = regexp.MustCompile(`#define LIBBPF_(MAJOR|MINOR)_VERSION (\d+)`)

// LibbpfVersion reads the version of the installed libbpf headers.
func LibbpfVersion() (string, error) {
	b, err := os.ReadFile("/usr/include/bpf/libbpf_version.h")
	if err != nil {
		return "", fmt.Errorf("libbpf headers: %w (install libbpf-dev)", err)
	}
	m := libbpfVersion.FindAllSubmatch(b, -1)
	if len(m) != 2 {
		return "", fmt.Errorf("libbpf_version.h: no version found")
	}
	return string(m[0][2]) + "." + string(m[1][2]), nil
}

// Current computes the record for the given C files in dir with the
// installed toolchain.
func Current(dir string, files ...string) (Record, error) {
	r := Record{Files: files}
	var err error
	if r.Sources, err = HashSources(dir, files...); err != nil {
		return r, err
	}
	if r.Clang, err = ClangVersion(); err != nil {
		return r, err
	}
	if r.Libbpf, err = LibbpfVersion(); err != nil {
		return r, err
	}
	return r, nil
}

// Marshal renders the record as the file content.
func (r Record) Marshal() []byte {
	var b bytes.Buffer
	b.WriteString("# What the committed BPF objects of this package were built from.\n")
	b.WriteString("# Written by `go generate`; checked by the package's tests.\n")
	if len(r.Files) > 0 {
		fmt.Fprintf(&b, "files %s\n", strings.Join(r.Files, " "))
	}
	fmt.Fprintf(&b, "sources %s\nclang %s\nlibbpf %s\n", r.Sources, r.Clang, r.Libbpf)
	return b.Bytes()
}

// Read parses a record file.
func Read(path string) (Record, error) {
	f, err := os.Open(path)
	if err != nil {
		return Record{}, err
	}
	defer f.Close()
	var r Record
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		k, v, _ := strings.Cut(line, " ")
		switch k {
		case "files":
			r.Files = strings.Fields(v)
		case "sources":
			r.Sources = v
		case "clang":
			r.Clang = v
		case "libbpf":
			r.Libbpf = v
		default:
			return Record{}, fmt.Errorf("%s: unknown key %q", path, k)
		}
	}
	return r, sc.Err()
}
