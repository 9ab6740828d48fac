/** Prints scanInterfaces() of this process's network namespace as JSON (tests/unit/sys-netlink.test.ts). */
import { scanInterfaces } from "../../src/sys/net-scan.ts";

console.log(JSON.stringify(scanInterfaces()));
