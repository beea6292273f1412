package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// kernel is a bootable kernel image and what belongs to it.
type kernel struct {
	// Image is the bzImage (vmlinuz) to boot.
	Image string
	// Release is the kernel release (uname -r), when the file names tell it.
	Release string
	// Config is the kernel's build configuration, "" when not found.
	Config string
	// Modules is the kernel's lib/modules/<release> folder, "" when absent.
	Modules string
}

// findKernel locates a kernel from p: either an unpacked Debian kernel
// package (a folder holding boot/vmlinuz-<release> and
// lib/modules/<release>/, as scripts/vm-kernels.sh leaves them) or a kernel
// image file, whose config and modules are looked for beside it in the same
// layout.
func findKernel(p string) (kernel, error) {
	st, err := os.Stat(p)
	if err != nil {
		return kernel{}, fmt.Errorf("kernel %s: %w (run scripts/vm-kernels.sh to fetch the test kernels)", p, err)
	}
	image := p
	if st.IsDir() {
		var found []string
		for _, pat := range []string{"boot/vmlinuz-*", "vmlinuz-*", "vmlinuz", "bzImage"} {
			m, _ := filepath.Glob(filepath.Join(p, pat))
			found = append(found, m...)
		}
		switch len(found) {
		case 0:
			return kernel{}, fmt.Errorf("kernel %s: no boot/vmlinuz-* in this folder (run scripts/vm-kernels.sh to fetch the test kernels)", p)
		case 1:
			image = found[0]
		default:
			return kernel{}, fmt.Errorf("kernel %s: several kernel images (%s): pass one of them to -kernel", p, strings.Join(found, ", "))
		}
	}
	k := kernel{Image: image}
	base := filepath.Base(image)
	if rel, ok := strings.CutPrefix(base, "vmlinuz-"); ok {
		k.Release = rel
		dir := filepath.Dir(image)
		if c := filepath.Join(dir, "config-"+rel); exists(c) {
			k.Config = c
		}
		for _, m := range []string{
			filepath.Join(dir, "..", "lib", "modules", rel),
			filepath.Join(dir, "lib", "modules", rel),
		} {
			if exists(m) {
				k.Modules = filepath.Clean(m)
				break
			}
		}
	}
	return k, nil
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// kernelConfig holds the options of a kernel build configuration file.
type kernelConfig map[string]string

// parseKernelConfig reads a kernel .config: lines CONFIG_X=value, comments
// and blank lines. String values keep their quotes stripped.
func parseKernelConfig(b []byte) (kernelConfig, error) {
	cfg := kernelConfig{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		k, v, ok := strings.Cut(s, "=")
		if !ok || !strings.HasPrefix(k, "CONFIG_") {
			return nil, fmt.Errorf("line %d: want CONFIG_NAME=value, got %q", line, s)
		}
		cfg[k] = strings.Trim(v, `"`)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// bpfLSMArg returns the kernel command-line argument that makes BPF LSM
// active: "" when the build's default LSM list (CONFIG_LSM) already holds
// bpf, otherwise lsm=<the default list>,bpf so the kernel's other LSMs stay.
// It fails when the kernel is built without CONFIG_BPF_LSM.
func bpfLSMArg(cfg kernelConfig) (string, error) {
	if cfg["CONFIG_BPF_LSM"] != "y" {
		return "", errors.New("kernel is built without CONFIG_BPF_LSM: BPF LSM programs cannot run on it")
	}
	lsms := strings.Split(cfg["CONFIG_LSM"], ",")
	lsms = slices.DeleteFunc(lsms, func(s string) bool { return s == "" })
	if slices.Contains(lsms, "bpf") {
		return "", nil
	}
	return "lsm=" + strings.Join(append(lsms, "bpf"), ","), nil
}
