package tracingpolicies

import "sort"

// Operator is the canonical name of a matchArgs or matchReturnArgs operator.
type Operator string

// The argument operators Vigil evaluates.
const (
	OpEqual      Operator = "Equal"
	OpNotEqual   Operator = "NotEqual"
	OpPrefix     Operator = "Prefix"
	OpNotPrefix  Operator = "NotPrefix"
	OpPostfix    Operator = "Postfix"
	OpNotPostfix Operator = "NotPostfix"
	OpMask       Operator = "Mask"
	OpGT         Operator = "GT"
	OpLT         Operator = "LT"
	OpSAddr      Operator = "SAddr"
	OpDAddr      Operator = "DAddr"
	OpNotSAddr   Operator = "NotSAddr"
	OpNotDAddr   Operator = "NotDAddr"
	OpSPort      Operator = "SPort"
	OpDPort      Operator = "DPort"
	OpNotSPort   Operator = "NotSPort"
	OpNotDPort   Operator = "NotDPort"
	OpProtocol   Operator = "Protocol"
	OpFamily     Operator = "Family"
	OpState      Operator = "State"
)

// operatorAliases maps every spelling Tetragon accepts for a supported
// operator to its canonical name.
var operatorAliases = map[string]Operator{
	"Equal": OpEqual, "eq": OpEqual,
	"NotEqual": OpNotEqual, "neq": OpNotEqual,
	"Prefix": OpPrefix, "prefix": OpPrefix,
	"NotPrefix": OpNotPrefix, "notprefix": OpNotPrefix,
	"Postfix": OpPostfix, "postfix": OpPostfix,
	"NotPostfix": OpNotPostfix, "notpostfix": OpNotPostfix,
	"Mask": OpMask, "mask": OpMask,
	"GT": OpGT, "gt": OpGT, "GreaterThan": OpGT,
	"LT": OpLT, "lt": OpLT, "LessThan": OpLT,
	"SAddr": OpSAddr, "saddr": OpSAddr, "Saddr": OpSAddr,
	"DAddr": OpDAddr, "daddr": OpDAddr, "Daddr": OpDAddr,
	"NotSAddr": OpNotSAddr, "notsaddr": OpNotSAddr, "NotSaddr": OpNotSAddr,
	"NotDAddr": OpNotDAddr, "notdaddr": OpNotDAddr, "NotDaddr": OpNotDAddr,
	"SPort": OpSPort, "sport": OpSPort, "Sport": OpSPort,
	"DPort": OpDPort, "dport": OpDPort, "Dport": OpDPort,
	"NotSPort": OpNotSPort, "notsport": OpNotSPort, "NotSport": OpNotSPort,
	"NotDPort": OpNotDPort, "notdport": OpNotDPort, "NotDport": OpNotDPort,
	"Protocol": OpProtocol, "protocol": OpProtocol,
	"Family": OpFamily, "family": OpFamily,
	"State": OpState, "state": OpState,
}

// unsupportedOperators are Tetragon's other argument operators, with the
// reason Vigil rejects each.
var unsupportedOperators = map[string]string{
	"In":                  "In is a matchBinaries/matchPIDs operator; use Equal",
	"NotIn":               "NotIn is a matchBinaries/matchPIDs operator; use NotEqual",
	"InMap":               "not supported by Vigil; use Equal with up to 64 values",
	"NotInMap":            "not supported by Vigil; use NotEqual with up to 64 values",
	"InRange":             "not supported by Vigil; use GT and LT in the same selector",
	"NotInRange":          "not supported by Vigil; use two selectors with LT and GT",
	"SPortPriv":           "not supported by Vigil; use SPort 0:1023",
	"NotSPortPriv":        "not supported by Vigil; use NotSPort 0:1023",
	"NotSportPriv":        "not supported by Vigil; use NotSPort 0:1023",
	"DPortPriv":           "not supported by Vigil; use DPort 0:1023",
	"NotDPortPriv":        "not supported by Vigil; use NotDPort 0:1023",
	"CapabilitiesGained":  "not supported by Vigil",
	"SubString":           "not supported by Vigil; use Prefix or Postfix",
	"SubStringIgnCase":    "not supported by Vigil; use Prefix or Postfix",
	"SubStringIgnoreCase": "not supported by Vigil; use Prefix or Postfix",
	"CelExpr":             "not supported by Vigil",
	"FileType":            "not supported by Vigil",
	"NotFileType":         "not supported by Vigil",
}

// Negated reports whether the operator matches when the value is absent
// (NotEqual, NotPrefix, NotSAddr, ...).
func (o Operator) Negated() bool {
	switch o {
	case OpNotEqual, OpNotPrefix, OpNotPostfix, OpNotSAddr, OpNotDAddr, OpNotSPort, OpNotDPort:
		return true
	}
	return false
}

// operatorsFor returns the operators valid on an argument type.
func operatorsFor(t ArgType) []Operator {
	switch t.Class() {
	case ClassInteger:
		return []Operator{OpEqual, OpNotEqual, OpGT, OpLT, OpMask}
	case ClassString, ClassPath:
		if t == TypeCharIovec {
			return []Operator{OpEqual, OpNotEqual, OpPrefix, OpPostfix}
		}
		return []Operator{OpEqual, OpNotEqual, OpPrefix, OpNotPrefix, OpPostfix, OpNotPostfix}
	case ClassNetwork:
		switch t {
		case TypeSockaddr:
			// A sockaddr is one address: the one connect() or bind() is
			// given. Vigil reports it as the source.
			return []Operator{OpSAddr, OpNotSAddr, OpSPort, OpNotSPort, OpFamily}
		}
		if t == TypeSock {
			return []Operator{OpSAddr, OpDAddr, OpNotSAddr, OpNotDAddr, OpSPort, OpDPort, OpNotSPort, OpNotDPort, OpProtocol, OpFamily, OpState}
		}
		return []Operator{OpSAddr, OpDAddr, OpNotSAddr, OpNotDAddr, OpSPort, OpDPort, OpNotSPort, OpNotDPort, OpProtocol, OpFamily}
	case ClassCapabilities:
		return []Operator{OpEqual, OpNotEqual, OpMask}
	}
	return nil
}

func operatorAllowed(t ArgType, op Operator) bool {
	for _, o := range operatorsFor(t) {
		if o == op {
			return true
		}
	}
	return false
}

func operatorNames() []string {
	names := make([]string, 0, len(operatorAliases))
	for n := range operatorAliases {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// SetOperator is In or NotIn (matchPIDs, matchNamespaces, matchCapabilities).
type SetOperator string

const (
	OpIn    SetOperator = "In"
	OpNotIn SetOperator = "NotIn"
)

// BinaryOperator is a matchBinaries operator.
type BinaryOperator string

const (
	BinIn         BinaryOperator = "In"
	BinNotIn      BinaryOperator = "NotIn"
	BinPrefix     BinaryOperator = "Prefix"
	BinNotPrefix  BinaryOperator = "NotPrefix"
	BinPostfix    BinaryOperator = "Postfix"
	BinNotPostfix BinaryOperator = "NotPostfix"
)

var binaryOperators = map[string]BinaryOperator{
	"In": BinIn, "NotIn": BinNotIn,
	"Prefix": BinPrefix, "NotPrefix": BinNotPrefix,
	"Postfix": BinPostfix, "NotPostfix": BinNotPostfix,
}

// Negated reports whether the operator excludes the listed binaries.
func (o BinaryOperator) Negated() bool {
	return o == BinNotIn || o == BinNotPrefix || o == BinNotPostfix
}
