/**
 * Test certificates, made fresh by openssl for every test that needs them, with
 * the same two commands the README's TLS section gives: a private CA, and a
 * certificate for `localhost`, `127.0.0.1` and `::1` signed by it. A second,
 * unrelated CA plays "the wrong --ca".
 *
 * Why generated and not committed: no private key lives in the repository, no
 * certificate ever expires under the tests, and the README's recipe is the
 * one the tests prove.
 *
 * @module
 */

import type { TlsCertificate } from "../net/serve.ts";
import type { TlsDialOptions } from "../net/dial.ts";

/** A private CA and a localhost certificate in a temporary folder (removed on dispose). */
export interface TestPki {
  /** The folder holding `ca.pem`, `cert.pem`, `key.pem`, `other-ca.pem` (and the CA keys). */
  dir: string;
  /** The server's certificate and key, as the servers take them. */
  certificate: TlsCertificate;
  /** Client options trusting the private CA. */
  trust: TlsDialOptions;
  /** Client options trusting only an unrelated CA. */
  wrongTrust: TlsDialOptions;
  [Symbol.asyncDispose](): Promise<void>;
}

async function openssl(dir: string, args: string[]): Promise<void> {
  const { code, stderr } = await new Deno.Command("openssl", {
    args,
    cwd: dir,
    stdout: "null",
    stderr: "piped",
  }).output();
  if (code !== 0) {
    throw new Error(`openssl ${args.join(" ")} failed:\n${new TextDecoder().decode(stderr)}`);
  }
}

const EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-noenc"];

/** Makes a CA (`ca.pem`, `ca-key.pem`) and a certificate it signs (`cert.pem`, `key.pem`). */
export async function makeTestPki(): Promise<TestPki> {
  const dir = await Deno.makeTempDir({ prefix: "parley-tls-" });
  try {
    const ca = (name: string, subject: string) =>
      openssl(dir, [
        "req",
        "-x509",
        ...EC,
        "-keyout",
        `${name}-key.pem`,
        "-out",
        `${name}.pem`,
        "-days",
        "3650",
        "-subj",
        subject,
      ]);
    await Promise.all([ca("ca", "/CN=Parley test CA"), ca("other-ca", "/CN=Some other CA")]);
    await openssl(dir, [
      "req",
      "-x509",
      ...EC,
      "-keyout",
      "key.pem",
      "-out",
      "cert.pem",
      "-days",
      "825",
      "-subj",
      "/CN=localhost",
      "-addext",
      "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1",
      "-addext",
      "basicConstraints=critical,CA:FALSE",
      "-CA",
      "ca.pem",
      "-CAkey",
      "ca-key.pem",
    ]);
  } catch (error) {
    await Deno.remove(dir, { recursive: true });
    throw error;
  }
  const read = (name: string) => Deno.readTextFileSync(`${dir}/${name}`);
  return {
    dir,
    certificate: { cert: read("cert.pem"), key: read("key.pem") },
    trust: { caCerts: [read("ca.pem")] },
    wrongTrust: { caCerts: [read("other-ca.pem")] },
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}

/**
 * A self-signed localhost certificate in `dir` (`self.pem`, `self-key.pem`), as the README's
 * one-command recipe makes it; with `asCa`, as plain `openssl req -x509` makes it (CA:TRUE).
 */
export async function makeSelfSigned(dir: string, asCa = false): Promise<TlsCertificate> {
  await openssl(dir, [
    "req",
    "-x509",
    ...EC,
    "-keyout",
    "self-key.pem",
    "-out",
    "self.pem",
    "-days",
    "825",
    "-subj",
    "/CN=localhost",
    "-addext",
    "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1",
    ...(asCa ? [] : ["-addext", "basicConstraints=critical,CA:FALSE"]),
  ]);
  return {
    cert: Deno.readTextFileSync(`${dir}/self.pem`),
    key: Deno.readTextFileSync(`${dir}/self-key.pem`),
  };
}
