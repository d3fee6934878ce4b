/**
 * Where Go fetches modules from: the module proxy and the checksum database, as the go
 * command's GOPROXY, GOSUMDB, GONOSUMDB, GOPRIVATE and GOINSECURE take them. Read once from
 * the PLUGFORGE_GO* variables (docs/configuration.md); the dependency phase and the
 * toolchain-module fetch both use this one section.
 */
export interface GoProxySettings {
  /** One http(s) URL, file:///dir on the Docker host, or "off". */
  proxy: string;
  sumdb: string;
  noSumDb: string;
  private: string;
  insecure: string;
}
