"""Writes an ES256 (P-256) key pair for the integration tests: the stack verifies tokens with
the public key (CAMEO_AUTH_PUBLIC_KEY_FILE), the tests sign with the private one."""
import os
import sys

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

folder = sys.argv[1]
os.makedirs(folder, exist_ok=True)
os.chmod(folder, 0o755)
key = ec.generate_private_key(ec.SECP256R1())
with open(os.path.join(folder, "es256-private.pem"), "wb") as f:
    f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
public_path = os.path.join(folder, "es256-public.pem")
with open(public_path, "wb") as f:
    f.write(key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
os.chmod(public_path, 0o644)
