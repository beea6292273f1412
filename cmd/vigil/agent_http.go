package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"github.com/vigilsec/vigil/agent"
	"github.com/vigilsec/vigil/networkpolicy/httpproxy"
)

// addHTTPFlags adds the flags of the HTTP proxy of network policy.
func addHTTPFlags(f *pflag.FlagSet, cfg *agent.NetpolHTTP) {
	f.Var((*portList)(&cfg.Visibility), "http-visibility", "TCP ports whose connections from pods go through the HTTP proxy for visibility, a flow per request (HTTP/1.x) or per stream (HTTP/2 with prior knowledge, gRPC calls among them) (repeatable or comma-separated; needs --network-policy or --kubernetes-network-policies)")
	f.Uint16Var(&cfg.ProxyPort, "http-proxy-port", httpproxy.DefaultPort, "port the HTTP proxy of rules.http and --http-visibility listens on, on 127.0.0.1 of each pod's network namespace (pods must not use it)")
	f.BoolVar(&cfg.RedactQuery, "http-redact-query", false, "leave query strings out of the URLs of HTTP flows")
	f.StringSliceVar(&cfg.Headers, "http-headers", nil, "request headers HTTP flows report (none by default: headers may carry secrets)")
}

// portList is a pflag value of TCP ports.
type portList []uint16

func (p *portList) String() string {
	var s []string
	for _, v := range *p {
		s = append(s, strconv.Itoa(int(v)))
	}
	return strings.Join(s, ",")
}

func (p *portList) Set(v string) error {
	for _, part := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(part))
		if err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%q is not a port (1-65535)", part)
		}
		*p = append(*p, uint16(n))
	}
	return nil
}

func (p *portList) Type() string { return "ports" }
