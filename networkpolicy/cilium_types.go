package networkpolicy

import (
	"encoding/json"
	"fmt"
	"strconv"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The cilium.io/v2 types below cover the subset of CiliumNetworkPolicy and
// CiliumClusterwideNetworkPolicy that Vigil supports. Fields outside the
// subset that Cilium defines are declared as Unsupported so that a document
// using them is refused by name ("not supported yet") instead of being
// reported as an unknown field or, worse, ignored.

// Unsupported holds a field Cilium defines and Vigil does not support.
type Unsupported struct {
	json.RawMessage
}

// Present reports whether the field was given (and not null).
func (u *Unsupported) Present() bool {
	return u != nil && len(u.RawMessage) > 0 && string(u.RawMessage) != "null"
}

// CiliumPolicy is a cilium.io/v2 CiliumNetworkPolicy or
// CiliumClusterwideNetworkPolicy document.
type CiliumPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              *CiliumRule  `json:"spec,omitempty"`
	Specs             []CiliumRule `json:"specs,omitempty"`
}

// CiliumRule is one policy rule (spec or specs[i]).
type CiliumRule struct {
	EndpointSelector  *metav1.LabelSelector `json:"endpointSelector,omitempty"`
	NodeSelector      *Unsupported          `json:"nodeSelector,omitempty"`
	Ingress           []CiliumIngress       `json:"ingress,omitempty"`
	IngressDeny       []CiliumIngress       `json:"ingressDeny,omitempty"`
	Egress            []CiliumEgress        `json:"egress,omitempty"`
	EgressDeny        []CiliumEgress        `json:"egressDeny,omitempty"`
	Labels            []CiliumLabel         `json:"labels,omitempty"`
	Description       string                `json:"description,omitempty"`
	EnableDefaultDeny *CiliumDefaultDeny    `json:"enableDefaultDeny,omitempty"`
	Log               *Unsupported          `json:"log,omitempty"`
}

// CiliumLabel is a rule label (metadata only).
type CiliumLabel struct {
	Key    string `json:"key"`
	Value  string `json:"value,omitempty"`
	Source string `json:"source,omitempty"`
}

// CiliumDefaultDeny overrides whether a rule puts its endpoints into default
// deny per direction.
type CiliumDefaultDeny struct {
	Ingress *bool `json:"ingress,omitempty"`
	Egress  *bool `json:"egress,omitempty"`
}

// CiliumIngress is an ingress or ingressDeny rule.
type CiliumIngress struct {
	FromEndpoints  []metav1.LabelSelector `json:"fromEndpoints,omitempty"`
	FromCIDR       []string               `json:"fromCIDR,omitempty"`
	FromCIDRSet    []CiliumCIDRRule       `json:"fromCIDRSet,omitempty"`
	FromEntities   []string               `json:"fromEntities,omitempty"`
	ToPorts        []CiliumPortRule       `json:"toPorts,omitempty"`
	FromRequires   *Unsupported           `json:"fromRequires,omitempty"`
	FromGroups     *Unsupported           `json:"fromGroups,omitempty"`
	FromNodes      *Unsupported           `json:"fromNodes,omitempty"`
	ICMPs          *Unsupported           `json:"icmps,omitempty"`
	Authentication *Unsupported           `json:"authentication,omitempty"`
}

// CiliumEgress is an egress or egressDeny rule.
type CiliumEgress struct {
	ToEndpoints    []metav1.LabelSelector `json:"toEndpoints,omitempty"`
	ToCIDR         []string               `json:"toCIDR,omitempty"`
	ToCIDRSet      []CiliumCIDRRule       `json:"toCIDRSet,omitempty"`
	ToEntities     []string               `json:"toEntities,omitempty"`
	ToPorts        []CiliumPortRule       `json:"toPorts,omitempty"`
	ToFQDNs        []CiliumFQDN           `json:"toFQDNs,omitempty"`
	ToServices     *Unsupported           `json:"toServices,omitempty"`
	ToRequires     *Unsupported           `json:"toRequires,omitempty"`
	ToGroups       *Unsupported           `json:"toGroups,omitempty"`
	ToNodes        *Unsupported           `json:"toNodes,omitempty"`
	ICMPs          *Unsupported           `json:"icmps,omitempty"`
	Authentication *Unsupported           `json:"authentication,omitempty"`
}

// CiliumFQDN selects DNS names: one name exactly (matchName) or the names
// a wildcard pattern matches (matchPattern).
type CiliumFQDN struct {
	MatchName    string `json:"matchName,omitempty"`
	MatchPattern string `json:"matchPattern,omitempty"`
}

// CiliumCIDRRule is a CIDR with exceptions.
type CiliumCIDRRule struct {
	CIDR              string       `json:"cidr,omitempty"`
	Except            []string     `json:"except,omitempty"`
	CIDRGroupRef      *Unsupported `json:"cidrGroupRef,omitempty"`
	CIDRGroupSelector *Unsupported `json:"cidrGroupSelector,omitempty"`
}

// CiliumPortRule is a toPorts entry.
type CiliumPortRule struct {
	Ports          []CiliumPort `json:"ports,omitempty"`
	Rules          *CiliumL7    `json:"rules,omitempty"`
	TerminatingTLS *Unsupported `json:"terminatingTLS,omitempty"`
	OriginatingTLS *Unsupported `json:"originatingTLS,omitempty"`
	ServerNames    *Unsupported `json:"serverNames,omitempty"`
	Listener       *Unsupported `json:"listener,omitempty"`
}

// CiliumL7 are L7 rules; of them http (which requests may pass) and dns
// (which names a pod may look up) are supported.
type CiliumL7 struct {
	HTTP    []CiliumHTTPRule `json:"http,omitempty"`
	Kafka   *Unsupported     `json:"kafka,omitempty"`
	DNS     []CiliumFQDN     `json:"dns,omitempty"`
	L7Proto *Unsupported     `json:"l7proto,omitempty"`
	L7      *Unsupported     `json:"l7,omitempty"`
}

// CiliumHTTPRule is one rules.http entry (Cilium's PortRuleHTTP).
type CiliumHTTPRule struct {
	Path          string       `json:"path,omitempty"`
	Method        string       `json:"method,omitempty"`
	Host          string       `json:"host,omitempty"`
	Headers       []string     `json:"headers,omitempty"`
	HeaderMatches *Unsupported `json:"headerMatches,omitempty"`
}

// CiliumPort is a port, named port or port range with a protocol.
type CiliumPort struct {
	Port     PortString `json:"port,omitempty"`
	EndPort  int32      `json:"endPort,omitempty"`
	Protocol string     `json:"protocol,omitempty"`
}

// PortString is a port number or name; YAML users write both 80 and "80".
type PortString string

// UnmarshalJSON accepts a JSON string or number.
func (p *PortString) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*p = PortString(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("port: want a number or a name, got %s", b)
	}
	if _, err := strconv.ParseInt(n.String(), 10, 64); err != nil {
		return fmt.Errorf("port: want an integer, got %s", n)
	}
	*p = PortString(n.String())
	return nil
}
