// Package main is a minimal Go plugin in the shape gotify loads: it exports
// GetGotifyPluginInfo and NewGotifyPluginInstance. It uses the standard library only,
// so it builds with no module proxy; a real gotify plugin imports
// github.com/gotify/plugin-api and returns its plugin.Info and plugin.Plugin types.
//
//	go build -buildmode=plugin -o hello.so .
package main

import "fmt"

// UserContext mirrors the fields of gotify's plugin.UserContext that this plugin reads.
type UserContext struct {
	ID    uint
	Name  string
	Admin bool
}

// Plugin is one instance per user, as gotify creates them.
type Plugin struct {
	user    UserContext
	enabled bool
}

// Enable is called when the user turns the plugin on.
func (p *Plugin) Enable() error {
	p.enabled = true
	return nil
}

// Disable is called when the user turns the plugin off.
func (p *Plugin) Disable() error {
	p.enabled = false
	return nil
}

// Greeting is what this plugin does: say hello to its user.
func (p *Plugin) Greeting() string {
	return fmt.Sprintf("hello, %s", p.user.Name)
}

// GetGotifyPluginInfo describes the plugin; the host reads it before creating instances.
func GetGotifyPluginInfo() map[string]string {
	return map[string]string{
		"modulePath":  "example.com/hello",
		"name":        "hello",
		"version":     "0.1.0",
		"description": "Says hello; an example plugin for plugforge.",
	}
}

// NewGotifyPluginInstance creates the plugin instance of one user.
func NewGotifyPluginInstance(ctx UserContext) *Plugin {
	return &Plugin{user: ctx}
}

func main() {
	panic("this is a Go plugin: build it with go build -buildmode=plugin")
}
