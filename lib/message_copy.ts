// Messages for the in-process transport: the receiver's own copy of what the sender gave (a message
// or an init shape, as `create` accepts), with a bound on its wire size. Crossing through the wire
// encoding made each message cost ~3 µs (64-bit fields encode through BigInt); `create` followed by
// a generic deep copy walked every message twice. A copier generated once per message type (as
// `create` itself is compiled) does both in one pass: the result is what
// `create(desc, deepCopy(value))` gives, sharing no array, bytes or nested message with `value`.
import {
  create,
  type DescField,
  type DescMessage,
  type DescOneof,
  type MessageShape,
  ScalarType,
} from "@bufbuild/protobuf";
import { isWrapperDesc } from "@bufbuild/protobuf/wkt";

/**
 * What a field can cost on the wire beyond its payload: a tag (≤ 5 bytes) and a varint value or
 * length (≤ 10 bytes). A fixed64 or double payload (8 bytes) fits in it too.
 */
const FIELD_OVERHEAD = 16;

/** The size bound of the copy under way; copies are synchronous, so one counter serves them all. */
const counter = { size: 0 };

type Copy = (value: unknown) => unknown;
type Fields = Record<string, unknown>;
/** A field's value in the copy, from the field's value in the source (undefined: leave it unset). */
type FieldValue = (value: unknown) => unknown;

const copiers = new WeakMap<DescMessage, Copy>();

/**
 * The receiver's copy of `value` (a message of `desc` or its init shape) as a message of `desc`,
 * and an upper bound of its encoded size in bytes.
 */
export function copyMessage<Desc extends DescMessage>(
  desc: Desc,
  value: unknown,
): { copy: MessageShape<Desc>; sizeBound: number } {
  counter.size = 0;
  const copy = copierOf(desc)(value ?? {}) as MessageShape<Desc>;
  return { copy, sizeBound: counter.size };
}

function copierOf(desc: DescMessage): Copy {
  let copier = copiers.get(desc);
  if (copier === undefined) {
    copier = compile(desc);
    copiers.set(desc, copier);
  }
  return copier;
}

/**
 * Generates the copier's source: one object literal with every field (so every copy of a type
 * has the same shape), plain scalars copied inline and the rest through a FieldValue each.
 */
function compile(desc: DescMessage): Copy {
  // What `create` puts in a message nobody initialised: implicit-presence zeros, empty lists and
  // maps, empty oneofs; explicit-presence defaults on the prototype (proto2 and editions).
  const zero = create(desc) as unknown as Fields;
  const prototype = Object.getPrototypeOf(zero);
  const values: FieldValue[] = [];
  const zeros: unknown[] = [];
  const fields = desc.members.map((member, i) => {
    const key = JSON.stringify(member.localName);
    const source = `from[${key}]`;
    zeros[i] = zero[member.localName];
    values[i] = member.kind === "oneof" ? oneofValue(member) : fieldValue(member, zero);
    if (member.kind === "field" && member.fieldKind === "scalar" && member.scalar !== ScalarType.BYTES) {
      const cost = member.scalar === ScalarType.STRING
        ? `${FIELD_OVERHEAD} + ${source}.length * 3`
        : FIELD_OVERHEAD;
      const absent = Object.hasOwn(zero, member.localName) ? `zeros[${i}]` : "undefined";
      return { key, expression: `(${source} != null ? (counter.size += ${cost}, ${source}) : ${absent})` };
    }
    return { key, expression: `values[${i}](${source})` };
  });
  const typeName = JSON.stringify(desc.typeName);
  const body = prototype === Object.prototype
    ? `return { $typeName: ${typeName}, ${fields.map((f) => `${f.key}: ${f.expression}`).join(", ")} };`
    : [
      `const to = Object.create(prototype); to.$typeName = ${typeName}; let v;`,
      ...fields.map((f) => `v = ${f.expression}; if (v !== undefined) to[${f.key}] = v;`),
      "return to;",
    ].join("\n");
  return new Function("counter", "values", "zeros", "prototype", `return (from) => { ${body} };`)(
    counter,
    values,
    zeros,
    prototype,
  ) as Copy;
}

function fieldValue(field: DescField, zero: Fields): FieldValue {
  switch (field.fieldKind) {
    case "list": {
      const element = valueCopy(field.listKind === "message" ? field.message : undefined, field.scalar);
      return (value) => {
        const list = value as unknown[] | undefined | null;
        if (list == null) return [];
        const out = new Array(list.length);
        for (let i = 0; i < list.length; i++) {
          counter.size += FIELD_OVERHEAD;
          out[i] = element(list[i]);
        }
        return out;
      };
    }
    case "map": {
      const entry = valueCopy(field.mapKind === "message" ? field.message : undefined, field.scalar);
      return (value) => {
        const map = value as Fields | undefined | null;
        const out: Fields = {};
        if (map != null) {
          for (const key of Object.keys(map)) {
            // The entry, its key and its value are each a field on the wire.
            counter.size += 3 * FIELD_OVERHEAD + key.length * 3;
            out[key] = entry(map[key]);
          }
        }
        return out;
      };
    }
    case "message": {
      const copy = singularMessageCopy(field);
      return (value) => {
        if (value == null) return undefined;
        counter.size += FIELD_OVERHEAD;
        return copy(value);
      };
    }
    default: {
      const copy = valueCopy(undefined, field.fieldKind === "scalar" ? field.scalar : undefined);
      const zeroValue = Object.hasOwn(zero, field.localName) ? zero[field.localName] : undefined;
      return (value) => {
        if (value == null) return zeroValue;
        counter.size += FIELD_OVERHEAD;
        return copy(value);
      };
    }
  }
}

function oneofValue(oneof: DescOneof): FieldValue {
  const cases = new Map<string, Copy>();
  for (const field of oneof.fields) {
    cases.set(
      field.localName,
      field.fieldKind === "message"
        ? valueCopy(field.message, undefined)
        : valueCopy(undefined, field.fieldKind === "scalar" ? field.scalar : undefined),
    );
  }
  return (value) => {
    const oneof = value as { case?: string; value?: unknown } | undefined | null;
    const copy = oneof?.case == null ? undefined : cases.get(oneof.case);
    if (copy === undefined) return { case: undefined };
    counter.size += FIELD_OVERHEAD;
    return { case: oneof!.case, value: copy(oneof!.value) };
  };
}

/**
 * A singular message field: a message, except where `create` keeps a plain value — the unwrapped
 * scalar of a google.protobuf wrapper type, the JSON object of a google.protobuf.Struct.
 */
function singularMessageCopy(field: DescField & { fieldKind: "message" }): Copy {
  if (isWrapperDesc(field.message)) return valueCopy(undefined, field.message.fields[0].scalar);
  if (
    field.message.typeName === "google.protobuf.Struct" && field.parent.typeName !== "google.protobuf.Value"
  ) {
    return (value) => {
      counter.size += JSON.stringify(value).length * 3;
      return structuredClone(value);
    };
  }
  return valueCopy(field.message, undefined);
}

/** Copies one value: a nested message of `message`, or a scalar of type `scalar` (enums: undefined). */
function valueCopy(message: DescMessage | undefined, scalar: ScalarType | undefined): Copy {
  if (message !== undefined) {
    // Resolved on first use: the type can be the very message being compiled.
    let nested: Copy | undefined;
    return (value) => (nested ??= copierOf(message))(value);
  }
  switch (scalar) {
    case ScalarType.BYTES:
      return (value) => {
        const bytes = value instanceof Uint8Array
          ? value.slice()
          : new Uint8Array(value as ArrayLike<number>);
        counter.size += bytes.length;
        return bytes;
      };
    case ScalarType.STRING:
      return (value) => {
        // UTF-16 code units to UTF-8 bytes: at most 3 each.
        counter.size += (value as string).length * 3;
        return value;
      };
    default:
      return (value) => value;
  }
}
