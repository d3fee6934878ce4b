/**
 * Configuration URLs may carry credentials (PLUGFORGE_GOPROXY=https://user:password@…, a
 * redis://:password@ URL, an S3 endpoint): whatever of them reaches a log line, an error,
 * a document, /readyz or the process's output goes through here first, so that the user
 * info is never printed (SECURITY.md, "Secrets are never printed").
 */
const USER_INFO = /\b([a-z][a-z0-9+.-]*:\/\/)[^\s/?#@"'<>]*@/gi;

/**
 * `text` (one URL, or a message quoting URLs, as Go's and the SDKs' do) with the user info
 * (user, password or both) of every URL in it replaced by "***"; anything else as it is.
 */
export function redactUrls(text: string): string {
  return text.replace(USER_INFO, '$1***@');
}
