// Validate GLB files with the Khronos glTF validator; prints one JSON summary per file.
// Usage: node tools/validate_gltf.cjs FILE.glb [...]
const fs = require("fs");
const validator = require("gltf-validator");

async function main() {
  const out = [];
  for (const file of process.argv.slice(2)) {
    const report = await validator.validateBytes(new Uint8Array(fs.readFileSync(file)), {
      maxIssues: 100,
      writeTimestamp: false,
    });
    out.push({
      file,
      errors: report.issues.numErrors,
      warnings: report.issues.numWarnings,
      infos: report.issues.numInfos,
      messages: report.issues.messages.map((m) => `${m.severity}:${m.code}:${m.pointer || ""}:${m.message}`),
    });
  }
  process.stdout.write(JSON.stringify(out));
}
main().catch((e) => { console.error(e); process.exit(1); });
