package uprobetarget

import "testing"

func TestCall(t *testing.T) {
	if got := Call(2, 3, "x"); got != 5 {
		t.Fatal(got)
	}
}
