"""A real SMTP server on loopback for the e-mail tests (aiosmtpd).

STARTTLS (required before AUTH and MAIL) or TLS from the first byte, with the
certificate and key the test made; AUTH PLAIN/LOGIN against one user and the
password in a file, or refusing every login (--refuse-login). Every message
it accepts is written to --out as one JSON file (envelope, the login used,
whether the session was encrypted, the raw message, its decoded headers and
body). Prints "listening PORT"
once it accepts connections; runs until killed.
"""

import argparse
import asyncio
import email
import email.policy
import json
import os
import ssl
import uuid

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--password-file", required=True)
    ap.add_argument("--implicit-tls", action="store_true")
    ap.add_argument("--refuse-login", action="store_true")
    args = ap.parse_args()
    with open(args.password_file, "rb") as f:
        password = f.read().rstrip(b"\r\n")

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(args.cert, args.key)

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (
            not args.refuse_login
            and isinstance(auth_data, LoginPassword)
            and auth_data.login == args.user.encode()
            and auth_data.password == password
        )
        login = auth_data.login.decode(errors="replace") if ok else None
        return AuthResult(success=ok, handled=False, auth_data=login)

    class Recorder:
        async def handle_DATA(self, server, session, envelope):
            record = {
                "mail_from": envelope.mail_from,
                "rcpt_tos": envelope.rcpt_tos,
                "login": session.auth_data,
                "encrypted": server.transport.get_extra_info("sslcontext") is not None,
                "data": envelope.content.decode("utf8", errors="replace"),
            }
            message = email.message_from_bytes(
                envelope.original_content or envelope.content, policy=email.policy.default
            )
            record["headers"] = {k: str(v) for k, v in message.items()}
            record["body"] = message.get_content().replace("\r\n", "\n")
            name = os.path.join(args.out, f"{uuid.uuid4()}.json")
            with open(name + ".tmp", "w") as f:
                json.dump(record, f)
            os.rename(name + ".tmp", name)
            return "250 2.0.0 Message accepted for delivery"

    def factory():
        kwargs = dict(
            hostname="localhost",
            authenticator=authenticator,
            auth_required=True,
        )
        if args.implicit_tls:
            # The whole connection is TLS, but aiosmtpd only counts STARTTLS
            # as encryption: without this it would not offer AUTH at all.
            kwargs.update(auth_require_tls=False)
        else:
            kwargs.update(tls_context=ctx, require_starttls=True)
        return SMTP(Recorder(), **kwargs)

    async def serve():
        server = await asyncio.get_running_loop().create_server(
            factory, "127.0.0.1", 0, ssl=ctx if args.implicit_tls else None
        )
        port = server.sockets[0].getsockname()[1]
        print(f"listening {port}", flush=True)
        await server.serve_forever()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
