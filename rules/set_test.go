package rules

import (
	"context"
	"testing"
)

func TestDefaultRulesCompile(t *testing.T) {
	s, _, err := Load(context.Background(), DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Rules()) < 16 {
		t.Errorf("%d default rules, want at least 16", len(s.Rules()))
	}
}
