package manifest

import (
	"strconv"
	"strings"

	yamlv2 "go.yaml.in/yaml/v2"
)

// yaml11Bools are the booleans of YAML 1.1, which kubectl, the API server
// and Tetragon read (through go.yaml.in/yaml/v2); YAML 1.2 knows only
// true and false.
var yaml11Bools = map[string]bool{
	"y": true, "Y": true, "yes": true, "Yes": true, "YES": true,
	"true": true, "True": true, "TRUE": true, "on": true, "On": true, "ON": true,
	"n": false, "N": false, "no": false, "No": false, "NO": false,
	"false": false, "False": false, "FALSE": false, "off": false, "Off": false, "OFF": false,
}

// yaml11 tells how a YAML 1.1 reader takes a plain scalar: "bool", "null",
// "number", or "" for a string; and, for a boolean or a number, the string
// that a string field receives from it there ("true", "1.1" for 1.10).
func yaml11(s string) (kind, text string) {
	if b, ok := yaml11Bools[s]; ok {
		return "bool", strconv.FormatBool(b)
	}
	switch s {
	case "", "~", "null", "Null", "NULL":
		return "null", ""
	}
	if strings.Trim(s, "0123456789abcdefABCDEFxXoO_+-.eEinfINFa") != "" || !strings.ContainsAny(s, "0123456789.") {
		return "", "" // cannot be a number
	}
	var v any
	if err := yamlv2.Unmarshal([]byte(s), &v); err != nil {
		return "", ""
	}
	switch x := v.(type) {
	case int:
		return "number", strconv.FormatInt(int64(x), 10)
	case int64:
		return "number", strconv.FormatInt(x, 10)
	case uint64:
		return "number", strconv.FormatUint(x, 10)
	case float64:
		// As sigs.k8s.io/yaml turns a float into a string.
		return "number", strconv.FormatFloat(x, 'g', -1, 32)
	}
	return "", ""
}
