// Shared Prettier config; the root package.json points at it ("prettier": "@flashattn/tooling/prettier").
export default { printWidth: 100, singleQuote: true, trailingComma: 'all' };
