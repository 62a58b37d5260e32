"""STAND-IN for a site's quantisation command (model_release_quantize_command): it does not
quantise. It copies the version MODEL_RELEASE_FROM of the tiny model built under .cache/ to
MODEL_RELEASE_VERSION, names it so in its manifest, and publishes it to the scenario's artifact
store, which is what a real command does after quantising. It checks the environment the release
gives it, and writes the variables it got to its last argument (for verify to read).

    standin_quantize.py PROJECT SCENARIO RECORD
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile


def main():
    project, scenario, record = sys.argv[1:4]
    env = {k: os.environ.get(k, "") for k in ("MODEL_RELEASE_MODEL", "MODEL_RELEASE_FROM", "MODEL_RELEASE_VERSION",
                                              "MODEL_RELEASE_SOURCE")}
    missing = [k for k, v in env.items() if not v]
    if missing:
        sys.exit("standin_quantize: %s not set" % ", ".join(missing))
    src = os.path.join(project, ".cache", "sandbox-model-out", env["MODEL_RELEASE_MODEL"], env["MODEL_RELEASE_FROM"])
    with tempfile.TemporaryDirectory() as scratch:
        out = os.path.join(scratch, env["MODEL_RELEASE_VERSION"])
        shutil.copytree(src, out)
        with open(os.path.join(out, "manifest.json")) as handle:
            manifest = json.load(handle)
        manifest["version"] = env["MODEL_RELEASE_VERSION"]
        with open(os.path.join(out, "manifest.json"), "w") as handle:
            json.dump(manifest, handle, indent=1)
        subprocess.run([os.path.join(project, "tools", "sandbox"), "-i", os.path.join(project, "molecule", "_shared", "inventory"),
                        "-i", os.path.join(scenario, "inventory"), "publish", out,
                        "models/%s/%s" % (env["MODEL_RELEASE_MODEL"], env["MODEL_RELEASE_VERSION"])], check=True)
    with open(record, "w") as handle:
        json.dump(env, handle)


if __name__ == "__main__":
    main()
