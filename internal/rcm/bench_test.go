package rcm

import (
	"context"
	"fmt"
	"testing"
)

// nopClient agrees to everything, as fast as a Go module can.
type nopClient struct {
	name string
	ins  []Interest
}

func (c *nopClient) Name() string                                 { return c.name }
func (c *nopClient) Register(context.Context) ([]Interest, error) { return c.ins, nil }
func (c *nopClient) Call(context.Context, Call) (string, error)   { return "in use", nil }

// BenchmarkQueryOffline10k is the budget of DESIGN.md: a query offline of
// a subtree of 10,000 resources (a bus with 100 devices of 100 units
// each) used by 20 Go clients, each registered on 500 of the resources.
func BenchmarkQueryOffline10k(b *testing.B) {
	ctx := context.Background()
	e := New(Options{})
	clients := make([]*nopClient, 20)
	for i := range clients {
		clients[i] = &nopClient{name: fmt.Sprintf("client%02d", i)}
	}
	for d := 0; d < 100; d++ {
		for u := 0; u < 100; u++ {
			name := fmt.Sprintf("/sys/devices/pci0000:00/dev%03d/unit%03d", d, u)
			c := clients[(d*100+u)%20]
			c.ins = append(c.ins, Interest{name, KindDR})
		}
	}
	for _, c := range clients {
		if err := e.AddClient(ctx, c); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := e.RequestOffline(ctx, []string{"/sys/devices/pci0000:00"}, Query, "bench"); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/query")
}
