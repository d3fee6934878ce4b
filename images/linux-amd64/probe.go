// The plugforge loading probe: plugin.Open(os.Args[1]), then Lookup(os.Args[2:]...).
package main

import (
	"encoding/json"
	"os"
	"plugin"
)

func report(v map[string]string, code int) {
	_ = json.NewEncoder(os.Stdout).Encode(v)
	os.Exit(code)
}

func main() {
	p, err := plugin.Open(os.Args[1])
	if err != nil {
		report(map[string]string{"result": "open_failed", "message": err.Error()}, 3)
	}
	for _, name := range os.Args[2:] {
		if _, err := p.Lookup(name); err != nil {
			report(map[string]string{"result": "symbol_missing", "symbol": name, "message": err.Error()}, 4)
		}
	}
	report(map[string]string{"result": "loaded"}, 0)
}
