import { describe, expect, test } from "bun:test";
import { parseHypervisorArgs } from "../../src/hypervisor/args-file.ts";
import { expand, kernelCmdline, TAGS, type Tag, type TagValues } from "../../src/hypervisor/expander.ts";

const ALL: Required<TagValues> = {
  COMMS_SOCKET: "/run/x/qmp.sock",
  CONSOLE_DEVICE: "file,id=console,path=/run/x/console.log",
  IMAGE: "/img/root.erofs",
  KERNEL_PARAMS: "console=ttyS0 quiet",
  KERNEL: "/k/vmlinux",
  NAME: "vm-c1",
  PROCESS_SOCKET: "/run/x/process.sock",
  SIZE: "1234",
  UUID: "0f8fad5b-d9cb-469f-a165-70867728950e",
  WORKLOAD_DIR: "/run/x/shared",
  INITRD: "/k/initrd.img",
  AGENT_SOCKET: "/run/x/agent.sock",
  ACCEL: "tcg",
  CPU: "max",
  MEMORY: "256",
  VCPUS: "2",
  COMMS_FD: "4",
  AGENT_FD: "5",
  PROCESS_FD: "6",
  SHARE_SECURITY: "passthrough",
};

describe("hypervisor.args", () => {
  test("every tag expands, alone or inside an argument", () => {
    const tags = Object.keys(TAGS) as Tag[];
    const text = ["/usr/bin/qemu", ...tags.map((t) => `x=@${t}@,y`), ...tags.map((t) => `@${t}@`)].join("\n");
    const out = expand(parseHypervisorArgs(text, "h.args"), ALL);
    expect(out.path).toBe("/usr/bin/qemu");
    expect(out.args).toEqual([...tags.map((t) => `x=${ALL[t]},y`), ...tags.map((t) => ALL[t])]);
  });

  test("the path line may use tags too, and two tags in one argument", () => {
    const out = expand(parseHypervisorArgs("@NAME@\n@NAME@-@UUID@\n", "f"), ALL);
    expect(out.path).toBe("vm-c1");
    expect(out.args).toEqual([`vm-c1-${ALL.UUID}`]);
  });

  test("comments and blank lines are ignored; one argument per line keeps inner spaces", () => {
    const text =
      "# the hypervisor\n\n  /usr/bin/qemu  \n# memory\n-m\n\n   # indented comment\n@MEMORY@\n-append\n@KERNEL_PARAMS@\n";
    const out = expand(parseHypervisorArgs(text, "f"), ALL);
    expect(out.args).toEqual(["-m", "256", "-append", "console=ttyS0 quiet"]);
  });

  test("an unknown tag names file:line", () => {
    const text = "/q\n-m\n@MEMORY@\n-name\n@NOPE@\n";
    expect(() => expand(parseHypervisorArgs(text, "/etc/h.args"), ALL)).toThrow(
      "/etc/h.args:5: unknown tag @NOPE@",
    );
  });

  test("a tag with no value names file:line", () => {
    const text = "# c\n/q\n-kernel\n@KERNEL@\n";
    expect(() => expand(parseHypervisorArgs(text, "h"), { ...ALL, KERNEL: "" })).toThrow(
      "h:4: tag @KERNEL@ has no value",
    );
    expect(() => expand(parseHypervisorArgs(text, "h"), { MEMORY: "1" })).toThrow(
      "h:4: tag @KERNEL@ has no value",
    );
  });

  test("a file of comments only has no hypervisor path", () => {
    expect(() => parseHypervisorArgs("# nothing\n\n", "h")).toThrow("h: no hypervisor path");
  });

  test("lower-case and lone @ are not tags", () => {
    const out = expand(parseHypervisorArgs("/q\nuser@host\n@lower@\n", "h"), ALL);
    expect(out.args).toEqual(["user@host", "@lower@"]);
  });
});

describe("kernel parameters: one argument, quoted as the kernel parses them", () => {
  test("plain parameters are joined by spaces", () => {
    expect(kernelCmdline(["console=ttyS0", "quiet", "panic=-1"])).toBe("console=ttyS0 quiet panic=-1");
  });
  test("a value with spaces is quoted after the =", () => {
    expect(kernelCmdline(["cc.init=/bin/sh -c true", "quiet"])).toBe('cc.init="/bin/sh -c true" quiet');
  });
  test("an already quoted parameter is left as it is", () => {
    expect(kernelCmdline(['x="a b"'])).toBe('x="a b"');
  });
  test("@KERNEL_PARAMS@ with spaces stays one argument", () => {
    const out = expand(parseHypervisorArgs("/q\n-append\n@KERNEL_PARAMS@\n", "h"), {
      KERNEL_PARAMS: kernelCmdline(["a=1", "b=x y"]),
    });
    expect(out.args).toEqual(["-append", 'a=1 b="x y"']);
  });
});
