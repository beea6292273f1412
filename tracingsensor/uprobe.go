package tracingsensor

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf/link"

	"github.com/vigilsec/vigil/kprobes"
	"github.com/vigilsec/vigil/kprobes/abi"
	"github.com/vigilsec/vigil/tracingpolicies"
)

// How uprobes are attached: with uprobe.multi (Linux 6.6), one link for
// the probes of a hook, the program finding the hook id in the probe's
// cookie; elsewhere one perf-event uprobe per probe, each running a copy of
// the generic kprobe program. Both read the function's arguments from the
// registers of the C calling convention.
const (
	mechUprobe      kprobes.Mechanism = "uprobe"
	mechUprobeMulti kprobes.Mechanism = "uprobe.multi"
	// mechUsdt is a uprobe at each site of a USDT probe, running the
	// generic USDT program, which reads the arguments where the probe's
	// note says (gen_usdts).
	mechUsdt kprobes.Mechanism = "usdt"
)

// The policy's USDT argument kinds are the kernel program's.
var (
	_ = [1]struct{}{}[uint8(tracingpolicies.USDTConst)-abi.GenUsdtConst]
	_ = [1]struct{}{}[uint8(tracingpolicies.USDTReg)-abi.GenUsdtReg]
	_ = [1]struct{}{}[uint8(tracingpolicies.USDTDeref)-abi.GenUsdtDeref]
)

// planHook is plan for any hook of a compiled policy.
func (g *generic) planHook(h *tracingpolicies.CompiledHook) (kprobes.Mechanism, uint32, error) {
	if h.Source.Kind != tracingpolicies.HookUprobe && h.Source.Kind != tracingpolicies.HookUsdt {
		return g.plan(&h.Request)
	}
	if !g.features.Has(kprobes.FeatureUprobe) {
		why := "not probed"
		if g.features != nil {
			why = g.features.Results[kprobes.FeatureUprobe].Error
		}
		return "", 0, fmt.Errorf("%w: this kernel has no uprobes (it needs CONFIG_UPROBE_EVENTS): %s", kprobes.ErrCannotAttach, why)
	}
	if h.Source.Kind == tracingpolicies.HookUsdt {
		return mechUsdt, 0, nil
	}
	switch m := h.Source.Mechanism; {
	case m == mechUprobe:
		return mechUprobe, 0, nil
	case m != "" && m != mechUprobeMulti:
		return "", 0, fmt.Errorf("%w: a uprobe is attached with uprobe or uprobe.multi, not %s", kprobes.ErrCannotAttach, m)
	case g.features.Has(kprobes.FeatureUprobeMulti):
		return mechUprobeMulti, 0, nil
	case m == mechUprobeMulti:
		return "", 0, fmt.Errorf("%w: this kernel has no uprobe.multi links (Linux 6.6)", kprobes.ErrCannotAttach)
	}
	return mechUprobe, 0, nil
}

// attachHook is attach for any hook of a compiled policy.
func (g *generic) attachHook(h *tracingpolicies.CompiledHook) (*attachment, error) {
	switch h.Source.Kind {
	case tracingpolicies.HookUprobe:
	case tracingpolicies.HookUsdt:
		a := &attachment{mechanism: mechUsdt}
		if err := g.attachUsdt(a, h.Source, h.Request.Targets); err != nil {
			a.Close()
			return nil, err
		}
		return a, nil
	default:
		return g.attach(&h.Request)
	}
	mech, _, err := g.planHook(h)
	if err != nil {
		return nil, err
	}
	a := &attachment{mechanism: mech}
	if mech == mechUprobeMulti {
		err = g.attachUprobeMulti(a, h.Source, h.Request.Targets)
	} else {
		err = g.attachUprobes(a, h.Source, h.Request.Targets)
	}
	if err != nil {
		a.Close()
		return nil, err
	}
	return a, nil
}

// attachUprobeMulti attaches the probes of a uprobe hook with one
// uprobe.multi link.
func (g *generic) attachUprobeMulti(a *attachment, h *tracingpolicies.Hook, targets []kprobes.HookTarget) error {
	ex, err := link.OpenExecutable(h.Binary)
	if err != nil {
		return fmt.Errorf("uprobe on %s: %w", h.Binary, err)
	}
	p, err := g.loadOne(abi.GenericProgGenericUprobeMulti, 0, 0, nil)
	if err != nil {
		return fmt.Errorf("load uprobe.multi program for %s: %w", h.Binary, err)
	}
	a.progs = append(a.progs, p)
	opts := link.UprobeMultiOptions{RefCtrOffsets: h.RefCtrOffsets, Addresses: h.Offsets}
	var symbols []string
	for _, t := range targets {
		opts.Cookies = append(opts.Cookies, uint64(t.ID))
		if len(h.Offsets) == 0 {
			symbols = append(symbols, t.Name)
		}
	}
	l, err := ex.UprobeMulti(symbols, p, &opts)
	if err != nil {
		if errors.Is(err, link.ErrNoSymbol) {
			return fmt.Errorf("%s: %w", h.Binary, err)
		}
		return fmt.Errorf("attach uprobe.multi on %s: %w", h.Binary, err)
	}
	a.links = append(a.links, l)
	return nil
}

// attachUprobes attaches one program per target of a uprobe hook: targets
// are the hook's symbols, or its offsets, in order.
func (g *generic) attachUprobes(a *attachment, h *tracingpolicies.Hook, targets []kprobes.HookTarget) error {
	ex, err := link.OpenExecutable(h.Binary)
	if err != nil {
		return fmt.Errorf("uprobe on %s: %w", h.Binary, err)
	}
	for i, t := range targets {
		var (
			symbol string
			opts   link.UprobeOptions
		)
		if len(h.Offsets) > 0 {
			opts.Address = h.Offsets[i]
		} else {
			symbol = t.Name
		}
		if len(h.RefCtrOffsets) > 0 {
			opts.RefCtrOffset = h.RefCtrOffsets[i]
		}
		p, err := g.loadOne(abi.GenericProgGenericKprobe, t.ID, 0, nil)
		if err != nil {
			return fmt.Errorf("load uprobe program for %s:%s: %w", h.Binary, t.Name, err)
		}
		a.progs = append(a.progs, p)
		l, err := ex.Uprobe(symbol, p, &opts)
		if err != nil {
			if errors.Is(err, link.ErrNoSymbol) {
				return fmt.Errorf("%s has no symbol %q", h.Binary, symbol)
			}
			return fmt.Errorf("attach uprobe %s:%s: %w", h.Binary, t.Name, err)
		}
		a.links = append(a.links, l)
	}
	return nil
}

// attachUsdt writes the argument locations of each site of a USDT probe
// and attaches one uprobe per site.
func (g *generic) attachUsdt(a *attachment, h *tracingpolicies.Hook, targets []kprobes.HookTarget) error {
	if len(targets) != len(h.Sites) {
		return fmt.Errorf("USDT probe %s:%s: %d targets for %d sites", h.Provider, h.Probe, len(targets), len(h.Sites))
	}
	ex, err := link.OpenExecutable(h.Binary)
	if err != nil {
		return fmt.Errorf("USDT probe on %s: %w", h.Binary, err)
	}
	for i, t := range targets {
		site := h.Sites[i]
		var spec abi.GenUsdt
		for j, arg := range site.Args {
			if j >= len(spec.Args) {
				break
			}
			spec.Args[j] = abi.GenUsdtArg{Kind: uint8(arg.Kind), Size: arg.Size, IsSigned: b2u8(arg.Signed), RegOff: arg.RegOff, Val: arg.Val}
		}
		if err := g.maps[abi.GenericMapGenUsdts].Put(t.ID, spec); err != nil {
			return fmt.Errorf("write USDT arguments: %w", err)
		}
		p, err := g.loadOne(abi.GenericProgGenericUsdt, t.ID, 0, nil)
		if err != nil {
			return fmt.Errorf("load USDT program for %s:%s: %w", h.Binary, t.Name, err)
		}
		a.progs = append(a.progs, p)
		l, err := ex.Uprobe("", p, &link.UprobeOptions{Address: site.Offset, RefCtrOffset: site.RefCtr})
		if err != nil {
			return fmt.Errorf("attach USDT probe %s:%s: %w", h.Binary, t.Name, err)
		}
		a.links = append(a.links, l)
	}
	return nil
}

func b2u8(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}
