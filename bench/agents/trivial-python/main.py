import os

with open(os.path.join(os.environ["MYCEL_OUT"], "result.txt"), "w") as out:
    out.write("ok\n")
