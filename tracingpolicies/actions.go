package tracingpolicies

import (
	"fmt"
	"strings"
)

// actionNames maps Tetragon's action names, which it matches without regard
// to case, to ours.
var actionNames = map[string]ActionKind{
	"post":        ActionPost,
	"nopost":      ActionNoPost,
	"sigkill":     ActionSigkill,
	"signal":      ActionSignal,
	"override":    ActionOverride,
	"tracksock":   ActionTrackSock,
	"untracksock": ActionUntrackSock,
}

// unsupportedActions are Tetragon's other actions, with the reason Vigil
// rejects each.
var unsupportedActions = map[string]string{
	"geturl":                      "Vigil makes no network requests on behalf of a policy; forward events to a webhook sink instead",
	"dnslookup":                   "Vigil makes no network requests on behalf of a policy; forward events to a webhook sink instead",
	"notifyenforcer":              "Vigil picks the enforcement mechanism per kernel; use Override or Sigkill",
	"cleanupenforcernotification": "Vigil picks the enforcement mechanism per kernel; use Override or Sigkill",
	"set":                         "writing a USDT probe's arguments is not implemented",
}

func (c *checker) actions(path string, h *Hook, specs []ActionSelector) []Action {
	if len(specs) == 0 {
		return []Action{{Kind: ActionPost}}
	}
	if len(specs) > MaxActionsPerSelector {
		c.errorf(path, "%d actions; a selector has at most %d", len(specs), MaxActionsPerSelector)
	}
	var out []Action
	seen := map[ActionKind]int{}
	for i := range specs {
		p := fmt.Sprintf("%s[%d]", path, i)
		a, ok := c.action(p, h, &specs[i])
		if !ok {
			continue
		}
		if j, dup := seen[a.Kind]; dup {
			c.errorf(p+".action", "%s is already an action of this selector (matchActions[%d])", a.Kind, j)
			continue
		}
		seen[a.Kind] = i
		out = append(out, a)
	}
	_, post := seen[ActionPost]
	if j, nopost := seen[ActionNoPost]; post && nopost {
		c.errorf(fmt.Sprintf("%s[%d].action", path, j), "Post and NoPost contradict each other; keep one")
	}
	if _, sig := seen[ActionSignal]; sig {
		if j, kill := seen[ActionSigkill]; kill {
			c.errorf(fmt.Sprintf("%s[%d].action", path, j), "Sigkill and Signal both send a signal; keep one")
		}
	}
	return out
}

func (c *checker) action(path string, h *Hook, s *ActionSelector) (Action, bool) {
	kind, ok := actionNames[strings.ToLower(s.Action)]
	if !ok {
		switch why, known := unsupportedActions[strings.ToLower(s.Action)]; {
		case s.Action == "":
			c.errorf(path+".action", "missing: Post, NoPost, Sigkill, Signal or Override")
		case known:
			c.errorf(path+".action", "action %q is not supported by Vigil: %s", s.Action, why)
		default:
			c.errorf(path+".action", "unknown action %q (want Post, NoPost, Sigkill, Signal or Override)%s", s.Action,
				didYouMean(s.Action, []string{"Post", "NoPost", "Sigkill", "Signal", "Override"}))
		}
		return Action{}, false
	}
	n := len(c.errs)
	c.rejectActionFields(path, s)
	a := Action{Kind: kind}
	notFor := func(field string, set bool, only string) {
		if set {
			c.errorf(path+"."+field, "%s applies to %s only, not %s", field, only, kind)
		}
	}
	if s.ArgError != 0 && kind != ActionOverride {
		// Tetragon ignores it (its kill_unprivileged_user_namespace
		// examples set it on Sigkill).
		c.warnf(path+".argError", "argError applies to Override only; %s ignores it", kind)
	}
	notFor("argSig", s.ArgSig != "" && kind != ActionSignal, "Signal")
	notFor("argSock", s.ArgSock != 0 && kind != ActionTrackSock && kind != ActionUntrackSock, "TrackSock and UntrackSock")
	notFor("rateLimit", s.RateLimit != "" && kind != ActionPost, "Post")
	notFor("rateLimitScope", s.RateLimitScope != "" && kind != ActionPost, "Post")

	switch kind {
	case ActionPost:
		if s.RateLimit != "" {
			d, err := parseRateLimit(s.RateLimit)
			if err != nil {
				c.errorf(path+".rateLimit", "%v", err)
			}
			a.RateLimit = d
		}
		switch s.RateLimitScope {
		case "", "process":
			if s.RateLimitScope != "" && s.RateLimit == "" {
				c.errorf(path+".rateLimitScope", "rateLimitScope needs a rateLimit")
			}
		case "thread", "global":
			c.unsupported(path+".rateLimitScope", "the rate limit applies per process (scope \"process\")")
		default:
			c.errorf(path+".rateLimitScope", "%q is not a rate limit scope (Vigil limits per process: \"process\")", s.RateLimitScope)
		}
	case ActionSignal:
		if s.ArgSig == "" {
			c.errorf(path+".argSig", "missing: Signal needs the signal to send, such as 9 or SIGKILL")
			break
		}
		sig, err := parseSignal(s.ArgSig)
		if err != nil {
			c.errorf(path+".argSig", "%v", err)
		}
		a.Signal = sig
	case ActionTrackSock, ActionUntrackSock:
		pos := int(s.ArgSock)
		switch {
		case pos >= len(h.Args):
			c.errorf(path+".argSock", "argSock %d is out of range: it is a position in args, and the hook has %d", pos, len(h.Args))
		case h.Args[pos].Type != TypeSock:
			c.errorf(path+".argSock", "argSock %d names args[%d], a %s; %s needs a sock", pos, pos, h.Args[pos].Type, kind)
		default:
			a.SockParam = h.Args[pos].Index
		}
	case ActionOverride:
		switch {
		case h.Kind == HookTracepoint:
			c.errorf(path+".action", "a tracepoint cannot change the result of a call; use Sigkill here, or hook an LSM hook or the syscall to Override")
		case h.Kind == HookUprobe || h.Kind == HookUsdt:
			c.unsupported(path+".action", "overriding a user function's return value is not implemented; use Sigkill or Signal")
		case s.ArgError == 0:
			c.errorf(path+".argError", "missing: Override needs the negative errno the call returns, such as -1 (EPERM) or -13 (EACCES)")
		case s.ArgError > 0 && h.Kind == HookKprobe:
			// Tetragon returns it as is; some functions give a positive
			// return a meaning (security_inode_copy_up_xattr: 1 discards
			// the attribute).
			c.warnf(path+".argError", "%d is positive: the function returns %d instead of running, which its callers read as that function defines it, not as an error", s.ArgError, s.ArgError)
		case s.ArgError > 0:
			c.errorf(path+".argError", "%d: Override returns an error, so argError is a negative errno such as %d", s.ArgError, -s.ArgError)
		case s.ArgError < -MaxErrno:
			c.errorf(path+".argError", "%d is not an errno (-1 to -%d)", s.ArgError, MaxErrno)
		}
		if h.Kind == HookKprobe {
			for _, fn := range h.Functions {
				if !strings.HasPrefix(fn, "security_") {
					c.warnf(path+".action", "Override on %s works only if the kernel marks it error-injectable (ALLOW_ERROR_INJECTION); prefer an LSM hook or a security_ function", fn)
					break
				}
			}
		}
		a.Error = s.ArgError
	}
	return a, len(c.errs) == n
}

func (c *checker) rejectActionFields(path string, s *ActionSelector) {
	reject := func(field string, set bool, why string) {
		if set {
			c.unsupported(path+"."+field, why)
		}
	}
	reject("argUrl", s.ArgURL != "", "the GetUrl action is not implemented")
	reject("argFqdn", s.ArgFqdn != "", "the DnsLookup action is not implemented")
	reject("argIndex", s.ArgIndex != 0, "the Set action is not implemented")
	reject("argValue", s.ArgValue != 0, "the Set action is not implemented")
	reject("argRegs", len(s.ArgRegs) > 0, "register overrides are uprobe-only and not implemented")
	reject("argNewSymbol", s.ArgNewSymbol != "", "call overrides are uprobe-only and not implemented")
	reject("argNewAddr", s.ArgNewAddr != 0, "call overrides are uprobe-only and not implemented")
	reject("argNewOffset", s.ArgNewOffset != 0, "call overrides are uprobe-only and not implemented")
	reject("kernelStackTrace", s.KernelStackTrace, "stack traces are not implemented")
	reject("userStackTrace", s.UserStackTrace, "stack traces are not implemented")
	reject("imaHash", s.ImaHash, "IMA hashes are not implemented")
}
