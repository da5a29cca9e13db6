// The types of public/vendor/socket.io.esm.min.js, the browser build of socket.io-client that
// web/build.mjs copies from npm: the package's own declarations. tsconfig.json's rootDirs
// lays this folder over public/, so the client's `../vendor/socket.io.esm.min.js` import
// finds this file before the minified code.
export * from "socket.io-client";
