/** Request bodies to inputs: JSON texts, base64 images in JSON, raw image bytes, multipart files and fields. */
import type { FastifyRequest } from 'fastify';
import { ClipError } from '../errors.js';
import { HttpError } from './errors.js';
import { SERVER_DEFAULTS } from './options.js';

export interface MultipartBody {
  files: Buffer[];
  fields: Map<string, string[]>;
}

const BASE64 = /^[A-Za-z0-9+/\-_]*={0,2}$/;

function invalid(message: string): ClipError {
  return new ClipError('E_INVALID_ARGUMENT', message);
}

function bodyObject(body: unknown): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body) || Buffer.isBuffer(body)) throw invalid('the body must be a JSON object');
  return body as Record<string, unknown>;
}

export function stringList(value: unknown, name: string, maxItems: number): string[] {
  if (!Array.isArray(value)) throw invalid(`${name} must be an array of strings`);
  if (value.length === 0) throw invalid(`${name} must not be empty`);
  if (value.length > maxItems) throw new HttpError(413, 'E_INPUT_TOO_LARGE', `${name}: ${value.length} items, more than the limit of ${maxItems} per request`);
  value.forEach((v, i) => {
    if (typeof v !== 'string') throw invalid(`${name}[${i}] must be a string, got ${v === null ? 'null' : typeof v}`);
  });
  return value as string[];
}

/** The default longest text (CLIP reads 77 tokens; the limit bounds the tokenizer's work per request). */
export const MAX_TEXT_CHARS = SERVER_DEFAULTS.maxTextChars;

/** How much text one request may bring: items, characters per item, characters in all. */
export interface TextLimits {
  maxItems: number;
  maxTextChars: number;
  maxRequestTextChars: number;
}

function tooLarge(message: string): HttpError {
  return new HttpError(413, 'E_INPUT_TOO_LARGE', message);
}

/** 413 for a string over maxTextChars, naming it. */
export function checkTextLength(text: string, name: string, maxTextChars: number): string {
  if (text.length > maxTextChars) throw tooLarge(`${name} has ${text.length} characters, more than the limit of ${maxTextChars}`);
  return text;
}

/** 413 when the request's texts, all together, are over maxRequestTextChars. */
export function checkRequestText(totalChars: number, what: string, maxRequestTextChars: number): void {
  if (totalChars > maxRequestTextChars) throw tooLarge(`${what}: ${totalChars} characters in all, more than the limit of ${maxRequestTextChars} per request`);
}

/** `{"texts": [...]}` */
export function textsFromBody(body: unknown, limits: TextLimits): string[] {
  const texts = stringList(bodyObject(body).texts, 'texts', limits.maxItems);
  let total = 0;
  texts.forEach((text, i) => {
    total += checkTextLength(text, `texts[${i}]`, limits.maxTextChars).length;
  });
  checkRequestText(total, 'texts', limits.maxRequestTextChars);
  return texts;
}

/**
 * Characters of every prompt that labels x templates expand to (open_clip's `{}` substitution, else the label
 * appended after a space), computed without building them: a template of many `{}` must not allocate first.
 */
export function promptChars(labels: readonly string[], templates: readonly string[]): number {
  const labelChars = labels.reduce((n, l) => n + l.length, 0);
  let total = 0;
  for (const t of templates) {
    const holes = t.split('{}').length - 1;
    total += holes > 0 ? labels.length * (t.length - 2 * holes) + holes * labelChars : labels.length * (t.length + 1) + labelChars;
  }
  return total;
}

/** Base64 (or a data: URL) to bytes; anything else is E_INVALID_ARGUMENT. */
export function decodeBase64(s: string, name: string): Buffer {
  const comma = s.startsWith('data:') ? s.indexOf(',') : -1;
  const text = (comma >= 0 ? s.slice(comma + 1) : s).replace(/\s+/g, '');
  if (text.length === 0 || !BASE64.test(text)) throw invalid(`${name} is not base64`);
  return Buffer.from(text, 'base64');
}

/** `{"images": ["<base64>", ...]}` (or `"image": "<base64>"`). */
export function imagesFromJson(body: Record<string, unknown>, maxItems: number): Buffer[] {
  if (body.images === undefined && typeof body.image === 'string') return [decodeBase64(body.image, 'image')];
  if (body.images === undefined && body.image !== undefined) throw invalid('image must be a base64 string');
  return stringList(body.images, 'images', maxItems).map((s, i) => decodeBase64(s, `images[${i}]`));
}

/** Reads every part: files as buffers, fields as strings. The whole body is held to maxBytes. */
export async function readMultipart(request: FastifyRequest, maxBytes: number, maxFiles: number, signal?: AbortSignal): Promise<MultipartBody> {
  const files: Buffer[] = [];
  const fields = new Map<string, string[]>();
  let total = 0;
  const count = (n: number) => {
    total += n;
    if (total > maxBytes) throw new HttpError(413, 'E_INPUT_TOO_LARGE', `the request body is larger than the limit of ${maxBytes} bytes`);
  };
  try {
    for await (const part of request.parts({ limits: { fileSize: maxBytes, files: maxFiles, fields: 32, fieldSize: Math.min(maxBytes, 1 << 20) } })) {
      signal?.throwIfAborted(); // nobody waits for the answer any more: stop buffering parts
      if (part.type === 'file') {
        const bytes = await part.toBuffer();
        count(bytes.length);
        files.push(bytes);
      } else {
        const value = typeof part.value === 'string' ? part.value : String(part.value);
        count(value.length);
        fields.set(part.fieldname, [...(fields.get(part.fieldname) ?? []), value]);
      }
    }
  } catch (err) {
    throw signal?.aborted && err === signal.reason ? err : malformedMultipart(err);
  }
  return { files, fields };
}

/**
 * The parser's own failures (no boundary, a body that ends mid-part, broken part headers) are the client's: 400.
 * Typed errors and the plugin's 4xx ones (a file over the limit: 413) pass through.
 */
function malformedMultipart(err: unknown): unknown {
  if (err instanceof HttpError || err instanceof ClipError) return err;
  const status = (err as { statusCode?: unknown } | null)?.statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) return err;
  const why = err instanceof Error ? err.message : String(err);
  return new ClipError('E_INVALID_ARGUMENT', `malformed multipart body: ${why}`, { cause: err });
}

/** Images of any accepted body: raw bytes (image/*), multipart files, or JSON base64. */
export async function imagesFromRequest(request: FastifyRequest, maxBytes: number, maxItems: number, signal?: AbortSignal): Promise<{ images: Buffer[]; json?: Record<string, unknown>; fields?: Map<string, string[]> }> {
  if (Buffer.isBuffer(request.body)) {
    if (request.body.length === 0) throw new ClipError('E_IMAGE_DECODE', 'empty image body');
    return { images: [request.body] };
  }
  if (request.isMultipart()) {
    const { files, fields } = await readMultipart(request, maxBytes, maxItems, signal);
    if (files.length === 0) throw invalid('the multipart body has no file part');
    return { images: files, fields };
  }
  const json = bodyObject(request.body);
  return { images: imagesFromJson(json, maxItems), json };
}

/** Labels from JSON (an array) or multipart fields (a JSON array, or comma-separated, per field). */
export function labelsOf(json: Record<string, unknown> | undefined, fields: Map<string, string[]> | undefined, maxItems: number, maxTextChars: number): string[] {
  return labelsIn(json, fields, maxItems).map((label, i) => checkTextLength(label, `labels[${i}]`, maxTextChars));
}

function labelsIn(json: Record<string, unknown> | undefined, fields: Map<string, string[]> | undefined, maxItems: number): string[] {
  if (json) return stringList(json.labels, 'labels', maxItems).map(checkLabel);
  const raw = fields?.get('labels') ?? [];
  const labels = raw.flatMap((v) => (v.trim().startsWith('[') ? stringList(parseJson(v, 'labels'), 'labels', maxItems) : v.split(',')));
  return stringList(
    labels.map((l) => l.trim()).filter((l) => l.length > 0),
    'labels',
    maxItems,
  );
}

/** Templates from JSON (an array) or multipart fields (a JSON array, or one template per field); undefined: the default. */
export function templatesOf(json: Record<string, unknown> | undefined, fields: Map<string, string[]> | undefined, maxItems: number, maxTextChars: number): string[] | undefined {
  return templatesIn(json, fields, maxItems)?.map((template, i) => checkTextLength(template, `templates[${i}]`, maxTextChars));
}

function templatesIn(json: Record<string, unknown> | undefined, fields: Map<string, string[]> | undefined, maxItems: number): string[] | undefined {
  if (json) return json.templates === undefined ? undefined : stringList(json.templates, 'templates', maxItems);
  const raw = fields?.get('templates') ?? fields?.get('template');
  if (!raw) return undefined;
  return stringList(
    raw.flatMap((v) => (v.trim().startsWith('[') ? stringList(parseJson(v, 'templates'), 'templates', maxItems) : [v])),
    'templates',
    maxItems,
  );
}

function checkLabel(label: string, i: number): string {
  if (label.trim().length === 0) throw invalid(`labels[${i}] is empty`);
  return label;
}

function parseJson(text: string, name: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw invalid(`${name} is not valid JSON`);
  }
}
