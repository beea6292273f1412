// Package websum records what the committed web UI assets were built from:
// a hash of the front-end's sources and lock file, a hash of the built
// assets, and the bundler's version. The ui package's tests compare the
// record with the tree, so assets that no longer match their sources (or
// were edited by hand) fail the suite instead of shipping.
package websum

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// FileName is the record's name inside the assets directory.
const FileName = "SOURCES.sum"

// Record is the content of SOURCES.sum.
type Record struct {
	Sources string // sha256 of the web sources
	Assets  string // sha256 of the built assets
	Esbuild string // version of esbuild in the lock file
}

// sourceFiles are the inputs of the build, relative to the web directory:
// the package manifest and lock, the build script, and everything in src.
func sourceFiles(web string) ([]string, error) {
	files := []string{"package.json", "package-lock.json", "build.mjs"}
	err := filepath.WalkDir(filepath.Join(web, "src"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			rel, _ := filepath.Rel(web, p)
			files = append(files, rel)
		}
		return nil
	})
	return files, err
}

// hashFiles hashes names (relative to dir) and contents in lexical order.
func hashFiles(dir string, files []string) (string, error) {
	sort.Strings(files)
	h := sha256.New()
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", filepath.ToSlash(f), len(b))
		h.Write(b)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// Current computes the record of the web directory and the assets
// directory as they are now.
func Current(web, assets string) (Record, error) {
	var r Record
	src, err := sourceFiles(web)
	if err != nil {
		return r, err
	}
	if r.Sources, err = hashFiles(web, src); err != nil {
		return r, err
	}
	entries, err := os.ReadDir(assets)
	if err != nil {
		return r, err
	}
	var out []string
	for _, e := range entries {
		if e.Type().IsRegular() && e.Name() != FileName {
			out = append(out, e.Name())
		}
	}
	if len(out) == 0 {
		return r, fmt.Errorf("%s holds no built assets", assets)
	}
	if r.Assets, err = hashFiles(assets, out); err != nil {
		return r, err
	}
	lock, err := os.ReadFile(filepath.Join(web, "package-lock.json"))
	if err != nil {
		return r, err
	}
	var l struct {
		Packages map[string]struct {
			Version string `json:"version"`
		} `json:"packages"`
	}
	if err := json.Unmarshal(lock, &l); err != nil {
		return r, fmt.Errorf("package-lock.json: %w", err)
	}
	r.Esbuild = l.Packages["node_modules/esbuild"].Version
	if r.Esbuild == "" {
		return r, fmt.Errorf("package-lock.json: no esbuild package")
	}
	return r, nil
}

// Marshal writes the record in SOURCES.sum's format.
func (r Record) Marshal() []byte {
	var b bytes.Buffer
	b.WriteString("# What the web UI's assets were built from (make generate writes it; the ui tests check it).\n")
	fmt.Fprintf(&b, "sources %s\nassets %s\nesbuild %s\n", r.Sources, r.Assets, r.Esbuild)
	return b.Bytes()
}

// Parse reads a SOURCES.sum.
func Parse(data []byte) (Record, error) {
	var r Record
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, " ")
		switch {
		case !ok:
			return r, fmt.Errorf("line %d: want \"key value\", have %q", n, line)
		case k == "sources":
			r.Sources = v
		case k == "assets":
			r.Assets = v
		case k == "esbuild":
			r.Esbuild = v
		default:
			return r, fmt.Errorf("line %d: unknown key %q", n, k)
		}
	}
	if r.Sources == "" || r.Assets == "" || r.Esbuild == "" {
		return r, fmt.Errorf("missing sources, assets or esbuild line")
	}
	return r, nil
}
