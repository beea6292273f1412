package containerdtest

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"time"
)

// Image references imported by Start.
const (
	BusyboxImage = "vigil.test/busybox:1"
	PauseImage   = "vigil.test/pause:1"
)

// busyboxApplets are the commands the image provides as links to busybox.
var busyboxApplets = []string{"sh", "sleep", "cat", "echo", "true", "false", "ls", "ps", "id", "env", "wc", "head", "grep"}

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int               `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Platform    *platform         `json:"platform,omitempty"`
}

type platform struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
}

type imageConfig struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
	Config       struct {
		Env        []string `json:"Env"`
		Entrypoint []string `json:"Entrypoint,omitempty"`
		Cmd        []string `json:"Cmd,omitempty"`
	} `json:"config"`
	RootFS struct {
		Type    string   `json:"type"`
		DiffIDs []string `json:"diff_ids"`
	} `json:"rootfs"`
}

// buildImages writes an OCI image layout archive holding two images made of
// one layer (busybox and its applet links): BusyboxImage, whose command is a
// shell, and PauseImage, which sleeps forever as a sandbox should.
func buildImages(busybox, out string) error {
	bin, err := os.ReadFile(busybox)
	if err != nil {
		return fmt.Errorf("read busybox: %w (install busybox-static)", err)
	}
	layer, err := layerTar(bin)
	if err != nil {
		return err
	}
	blobs := map[string][]byte{}
	add := func(b []byte) (string, int) {
		sum := sha256.Sum256(b)
		d := "sha256:" + hex.EncodeToString(sum[:])
		blobs[d] = b
		return d, len(b)
	}
	layerDigest, layerSize := add(layer)

	var index struct {
		SchemaVersion int          `json:"schemaVersion"`
		MediaType     string       `json:"mediaType"`
		Manifests     []descriptor `json:"manifests"`
	}
	index.SchemaVersion = 2
	index.MediaType = "application/vnd.oci.image.index.v1+json"
	for _, img := range []struct {
		ref, tag        string
		entrypoint, cmd []string
	}{
		{BusyboxImage, "1", nil, []string{"/bin/sh"}},
		{PauseImage, "1", []string{"/bin/sleep", "2147483647"}, nil},
	} {
		var cfg imageConfig
		cfg.Architecture, cfg.OS = "amd64", "linux"
		cfg.Config.Env = []string{"PATH=/bin"}
		cfg.Config.Entrypoint, cfg.Config.Cmd = img.entrypoint, img.cmd
		cfg.RootFS.Type = "layers"
		cfg.RootFS.DiffIDs = []string{layerDigest}
		cb, _ := json.Marshal(cfg)
		cd, cs := add(cb)
		manifest := map[string]any{
			"schemaVersion": 2,
			"mediaType":     "application/vnd.oci.image.manifest.v1+json",
			"config":        descriptor{MediaType: "application/vnd.oci.image.config.v1+json", Digest: cd, Size: cs},
			"layers":        []descriptor{{MediaType: "application/vnd.oci.image.layer.v1.tar", Digest: layerDigest, Size: layerSize}},
		}
		mb, _ := json.Marshal(manifest)
		md, ms := add(mb)
		index.Manifests = append(index.Manifests, descriptor{
			MediaType: "application/vnd.oci.image.manifest.v1+json", Digest: md, Size: ms,
			Annotations: map[string]string{
				"io.containerd.image.name":          img.ref,
				"org.opencontainers.image.ref.name": img.tag,
			},
			Platform: &platform{Architecture: "amd64", OS: "linux"},
		})
	}
	ib, _ := json.Marshal(index)

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	now := time.Unix(0, 0)
	file := func(name string, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: now, Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	if err := file("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return err
	}
	if err := file("index.json", ib); err != nil {
		return err
	}
	for d, b := range blobs {
		if err := file("blobs/sha256/"+d[len("sha256:"):], b); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return os.WriteFile(out, buf.Bytes(), 0o644)
}

// layerTar is the image's one layer: /bin/busybox, links to it, and the few
// directories and files a container runtime expects.
func layerTar(busybox []byte) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	now := time.Unix(0, 0)
	hdrs := []*tar.Header{}
	for _, d := range []string{"bin/", "dev/", "etc/", "proc/", "sys/", "tmp/", "root/"} {
		hdrs = append(hdrs, &tar.Header{Name: d, Mode: 0o755, Typeflag: tar.TypeDir, ModTime: now})
	}
	for _, h := range hdrs {
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
	}
	if err := tw.WriteHeader(&tar.Header{Name: "bin/busybox", Mode: 0o755, Size: int64(len(busybox)), Typeflag: tar.TypeReg, ModTime: now}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(busybox); err != nil {
		return nil, err
	}
	for _, a := range busyboxApplets {
		if err := tw.WriteHeader(&tar.Header{Name: "bin/" + a, Linkname: "busybox", Mode: 0o777, Typeflag: tar.TypeSymlink, ModTime: now}); err != nil {
			return nil, err
		}
	}
	for name, data := range map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\n",
		"etc/group":  "root:x:0:\n",
	} {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg, ModTime: now}); err != nil {
			return nil, err
		}
		if _, err := tw.Write([]byte(data)); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
