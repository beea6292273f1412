package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// moduleName normalizes a module name or file name the way the kernel does:
// no folder, no .ko[.xz|.zst|.gz] suffix, dashes as underscores.
func moduleName(s string) string {
	s = filepath.Base(s)
	for _, ext := range []string{".xz", ".zst", ".gz"} {
		s = strings.TrimSuffix(s, ext)
	}
	s = strings.TrimSuffix(s, ".ko")
	return strings.ReplaceAll(s, "-", "_")
}

// parseModulesDep reads depmod's modules.dep: one line per module,
// "path: dependency-path ...". It returns, per module name, its path and the
// names of its dependencies.
func parseModulesDep(b []byte) (map[string]moduleEntry, error) {
	out := map[string]moduleEntry{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		p, deps, ok := strings.Cut(s, ":")
		if !ok || strings.TrimSpace(p) == "" {
			return nil, fmt.Errorf("modules.dep:%d: want \"module: dependencies\", got %q", line, s)
		}
		e := moduleEntry{Path: strings.TrimSpace(p), depsKnown: true}
		for _, d := range strings.Fields(deps) {
			e.Deps = append(e.Deps, moduleName(d))
		}
		out[moduleName(e.Path)] = e
	}
	return out, sc.Err()
}

type moduleEntry struct {
	// Path is relative to the modules folder.
	Path string
	Deps []string
	// depsKnown is false until Deps was read (from modules.dep or .modinfo).
	depsKnown bool
}

// parseModinfo returns the depends= list of a module's .modinfo section
// contents (NUL-separated key=value strings).
func parseModinfo(b []byte) []string {
	for _, kv := range bytes.Split(b, []byte{0}) {
		v, ok := bytes.CutPrefix(kv, []byte("depends="))
		if !ok {
			continue
		}
		var deps []string
		for _, d := range strings.Split(string(v), ",") {
			if d = strings.TrimSpace(d); d != "" {
				deps = append(deps, moduleName(d))
			}
		}
		return deps
	}
	return nil
}

// moduleSet resolves kernel modules by name in one kernel's modules folder
// and decompresses the files to load into a work folder.
type moduleSet struct {
	dir     string
	work    string
	entries map[string]moduleEntry
	builtin map[string]bool
}

// openModules indexes the modules folder dir (lib/modules/<release>). It
// uses modules.dep when depmod has written one and otherwise reads each
// needed module's dependencies from its .modinfo section, as Debian's kernel
// packages ship without modules.dep (depmod runs when they are installed).
func openModules(dir, work string) (*moduleSet, error) {
	ms := &moduleSet{dir: dir, work: work, builtin: map[string]bool{}}
	if b, err := os.ReadFile(filepath.Join(dir, "modules.builtin")); err == nil {
		for _, l := range strings.Fields(string(b)) {
			ms.builtin[moduleName(l)] = true
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "modules.dep")); err == nil {
		e, err := parseModulesDep(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", dir, err)
		}
		ms.entries = e
		return ms, nil
	}
	ms.entries = map[string]moduleEntry{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() && strings.Contains(d.Name(), ".ko") {
			rel, _ := filepath.Rel(dir, p)
			ms.entries[moduleName(p)] = moduleEntry{Path: rel}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("index kernel modules: %w", err)
	}
	return ms, nil
}

// Resolve returns the decompressed module files to insmod, dependencies
// first. Modules built into the kernel are left out.
func (ms *moduleSet) Resolve(names []string) ([]string, error) {
	var order []string
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(name, from string) error
	visit = func(name, from string) error {
		switch state[name] {
		case 1:
			return fmt.Errorf("module %s: dependency cycle", name)
		case 2:
			return nil
		}
		if ms.builtin[name] {
			state[name] = 2
			return nil
		}
		e, ok := ms.entries[name]
		if !ok {
			if from != "" {
				return fmt.Errorf("module %s (needed by %s) not found in %s", name, from, ms.dir)
			}
			return fmt.Errorf("module %s not found in %s (neither a module file nor listed in modules.builtin)", name, ms.dir)
		}
		state[name] = 1
		ko, err := ms.decompress(e.Path)
		if err != nil {
			return err
		}
		if !e.depsKnown {
			e.Deps, err = readModuleDeps(ko)
			if err != nil {
				return fmt.Errorf("module %s: %w", name, err)
			}
		}
		for _, d := range e.Deps {
			if err := visit(d, name); err != nil {
				return err
			}
		}
		state[name] = 2
		order = append(order, ko)
		return nil
	}
	for _, n := range names {
		if err := visit(moduleName(n), ""); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// decompress writes the module at rel (relative to the modules folder) as a
// plain .ko file in the work folder and returns its path.
func (ms *moduleSet) decompress(rel string) (string, error) {
	src := filepath.Join(ms.dir, rel)
	dst := filepath.Join(ms.work, moduleName(rel)+".ko")
	var r io.Reader
	var cmd *exec.Cmd
	switch {
	case strings.HasSuffix(rel, ".xz"):
		cmd = exec.Command("xz", "-dc", src)
	case strings.HasSuffix(rel, ".zst"):
		cmd = exec.Command("zstd", "-dcq", src)
	case strings.HasSuffix(rel, ".gz"):
		f, err := os.Open(src)
		if err != nil {
			return "", err
		}
		defer f.Close()
		zr, err := gzip.NewReader(f)
		if err != nil {
			return "", fmt.Errorf("decompress %s: %w", src, err)
		}
		r = zr
	default:
		f, err := os.Open(src)
		if err != nil {
			return "", err
		}
		defer f.Close()
		r = f
	}
	out, err := os.Create(dst)
	if err != nil {
		return "", err
	}
	defer out.Close()
	if cmd != nil {
		var stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = out, &stderr
		if err := cmd.Run(); err != nil {
			hint := ""
			if errors.Is(err, exec.ErrNotFound) {
				hint = " (install it with scripts/setup-host.sh --vm)"
			}
			return "", fmt.Errorf("decompress %s with %s: %w%s %s", src, cmd.Args[0], err, hint, strings.TrimSpace(stderr.String()))
		}
	} else if _, err := io.Copy(out, r); err != nil {
		return "", fmt.Errorf("decompress %s: %w", src, err)
	}
	return dst, out.Close()
}

// readModuleDeps reads the depends= entry of a module file's .modinfo.
func readModuleDeps(ko string) ([]string, error) {
	f, err := elf.Open(ko)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", ko, err)
	}
	defer f.Close()
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, fmt.Errorf("%s has no .modinfo section: not a kernel module", ko)
	}
	b, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf("read %s .modinfo: %w", ko, err)
	}
	return parseModinfo(b), nil
}
