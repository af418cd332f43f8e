// A throwaway test CA with a server certificate (127.0.0.1, localhost) and a client certificate, made with openssl.
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import path from "node:path";

export interface TestPki {
  dir: string;
  caCert: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  /** A client certificate from a different CA, which the agent must reject. */
  strangerCert: string;
  strangerKey: string;
}

function openssl(dir: string, ...args: string[]): void {
  execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
}

function issue(dir: string, name: string, subject: string, ca: string, ext: string): void {
  openssl(dir, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", `${name}.key`, "-subj", subject, "-out", `${name}.csr`);
  writeFileSync(path.join(dir, `${name}.ext`), ext);
  openssl(dir, "x509", "-req", "-in", `${name}.csr`, "-CA", `${ca}.crt`, "-CAkey", `${ca}.key`, "-CAcreateserial", "-days", "2", "-extfile", `${name}.ext`, "-out", `${name}.crt`);
}

function makeCa(dir: string, name: string): void {
  openssl(dir, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", `${name}.key`, "-subj", `/CN=${name}`, "-days", "2", "-out", `${name}.crt`);
}

export function makePki(dir: string): TestPki {
  makeCa(dir, "ca");
  makeCa(dir, "other-ca");
  issue(dir, "server", "/CN=qumra-agent", "ca", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n");
  issue(dir, "client", "/CN=controller", "ca", "extendedKeyUsage=clientAuth\n");
  issue(dir, "stranger", "/CN=stranger", "other-ca", "extendedKeyUsage=clientAuth\n");
  const p = (f: string) => path.join(dir, f);
  return {
    dir,
    caCert: p("ca.crt"),
    serverCert: p("server.crt"),
    serverKey: p("server.key"),
    clientCert: p("client.crt"),
    clientKey: p("client.key"),
    strangerCert: p("stranger.crt"),
    strangerKey: p("stranger.key"),
  };
}

export interface ClientCert {
  cert: string;
  key: string;
}

/** Another client certificate from the test CA, with subject CN=`cn` and, when given, a SAN URI (a SPIFFE ID). */
export function issueClient(pki: TestPki, name: string, cn: string, sanUri?: string): ClientCert {
  issue(pki.dir, name, `/CN=${cn}`, "ca", `extendedKeyUsage=clientAuth\n${sanUri ? `subjectAltName=URI:${sanUri}\n` : ""}`);
  return { cert: path.join(pki.dir, `${name}.crt`), key: path.join(pki.dir, `${name}.key`) };
}
