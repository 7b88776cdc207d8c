# Runs INSIDE MicroPython. The front end's modules are imported only for a model that has a front end:
# prints, as JSON, which edgenn modules are loaded after loading RAW.enn, then after FRONTEND.enn, and
# whether the front end then runs the viper kernels (edgenn_fe_viper) with the viper kernel.
# usage: check_fe_import.py RAW.enn FRONTEND.enn
import json
import sys

import edgenn


def loaded():
    return sorted(name for name in sys.modules if name.startswith("edgenn"))


edgenn.load(sys.argv[1])
after_raw = loaded()
net = edgenn.load(sys.argv[2], "viper")
fev = sys.modules.get("edgenn_fe_viper")
print(json.dumps({"after_raw": after_raw, "after_frontend": loaded(),
                  "viper_front_end": fev is not None and net._fe_load is fev.fe_load}))
