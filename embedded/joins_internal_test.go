package embedded

import (
	"context"
	"fmt"
	"testing"
	"time"
)

func TestJoinKeeper_GivenManyMembersWhereSomeWentSilent_WhenAnotherSpeaks_ThenTheSilentOnesAreForgotten(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	k := &joinKeeper{ctx: ctx, cancel: cancel, members: map[groupMember]*kept{}}
	long := time.Now().Add(-2 * keptSilence)
	for i := range keptMembers {
		seen := long
		if i%2 == 0 {
			seen = time.Now()
		}
		k.members[groupMember{"g", fmt.Sprint(i)}] = &kept{generation: 1, seen: seen}
	}
	k.members[groupMember{"g", "joining"}] = &kept{generation: 1, seen: long, stop: make(chan struct{})}

	k.alive("g", "new", 1)

	if got, want := len(k.members), keptMembers/2+2; got != want {
		t.Fatalf("%d members kept, want %d (the recent half, the one being kept alive, the new one)", got, want)
	}
	if _, ok := k.members[groupMember{"g", "joining"}]; !ok {
		t.Fatal("a member waiting in a join was forgotten")
	}
	if _, ok := k.members[groupMember{"g", "1"}]; ok {
		t.Fatal("a silent member was kept")
	}
}
