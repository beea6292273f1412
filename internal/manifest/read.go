package manifest

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unicode/utf8"
)

// Extensions are the file name endings read in directories: YAML and JSON.
var Extensions = []string{".yaml", ".yml", ".json"}

// ReadPath reads a file, or every manifest file below a directory (see
// Files) in lexical order. Like Split, it returns the documents it could
// read along with every problem.
func ReadPath(path string) ([]*Document, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return ReadFile(path)
	}
	files, err := Files(path)
	if err != nil {
		return nil, err
	}
	var docs []*Document
	var errs Errors
	for _, f := range files {
		d, err := ReadFile(f)
		errs = append(errs, AsErrors(f, err)...)
		docs = append(docs, d...)
	}
	return docs, errs.Err()
}

// Files lists the *.yaml, *.yml and *.json files below dir, sorted, leaving
// out hidden files and directories (such as the ..data links of a mounted
// ConfigMap).
func Files(dir string) ([]string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != dir && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			return nil
		}
		if IsManifestFile(p) {
			files = append(files, p)
		}
		return nil
	})
	sort.Strings(files)
	return files, err
}

// IsManifestFile reports whether the name ends in .yaml, .yml or .json and
// is not hidden.
func IsManifestFile(name string) bool {
	base := filepath.Base(name)
	if strings.HasPrefix(base, ".") {
		return false
	}
	ext := strings.ToLower(filepath.Ext(base))
	for _, e := range Extensions {
		if ext == e {
			return true
		}
	}
	return false
}

// NoFilesMessage is the problem of a directory without manifest files.
const NoFilesMessage = "no *.yaml, *.yml or *.json files in this directory"

// ReadFile reads and splits one file.
func ReadFile(path string) ([]*Document, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Split(path, data)
}

// checkText refuses what cannot be a YAML or JSON file: nothing at all, NUL
// bytes and other control characters, invalid UTF-8. The YAML parser would
// refuse most of these too, but without a line, or (for an empty file) not
// at all.
func checkText(file string, data []byte) *Error {
	if len(bytes.TrimSpace(data)) == 0 {
		return &Error{File: file, Line: 1, Msg: "the file is empty"}
	}
	if bytes.HasPrefix(data, []byte{0xff, 0xfe}) || bytes.HasPrefix(data, []byte{0xfe, 0xff}) {
		return &Error{File: file, Line: 1, Msg: "the file is UTF-16 text; save it as UTF-8"}
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	line, col := 1, 1
	for i := 0; i < len(data); {
		c := data[i]
		if c == '\n' {
			line, col = line+1, 1
			i++
			continue
		}
		if c < utf8.RuneSelf {
			switch {
			case c == 0:
				return &Error{File: file, Line: line, Msg: fmt.Sprintf("NUL byte at column %d: this is a binary file, not YAML or JSON", col)}
			case c < 0x20 && c != '\t' && c != '\r', c == 0x7f:
				return &Error{File: file, Line: line, Msg: fmt.Sprintf("control character %#02x at column %d: this is not a YAML or JSON text file", c, col)}
			}
			i++
			col++
			continue
		}
		r, size := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && size == 1 {
			return &Error{File: file, Line: line, Msg: fmt.Sprintf("invalid UTF-8 (byte %#02x) at column %d: this is a binary file, or not UTF-8 text", c, col)}
		}
		i += size
		col++
	}
	return nil
}
